DELETE FROM "klaviyo"."kl_profiles"
WHERE
  EXISTS(
    SELECT
      1
    FROM (
      SELECT
        "segment_id",
        "id",
        "joined"
      FROM (
        SELECT
          CAST("segment_id" AS VARCHAR(65535)) AS "segment_id",
          CAST("id" AS VARCHAR(65535)) AS "id",
          CAST("joined" AS TIMESTAMP WITH TIME ZONE) AS "joined",
          ROW_NUMBER() OVER (
            PARTITION BY "segment_id", "id"
            ORDER BY "joined" DESC NULLS LAST, "__klx_seq" DESC NULLS LAST
          ) AS "__klx_rank"
        FROM "__klx_batch"
      ) AS "ranked"
      WHERE
        "__klx_rank" = 1
    ) AS "s"
    WHERE
      (
        "klaviyo"."kl_profiles"."segment_id" = "s"."segment_id"
        AND "klaviyo"."kl_profiles"."id" = "s"."id"
      )
      AND (
        "klaviyo"."kl_profiles"."joined" IS NULL
        OR "s"."joined" > "klaviyo"."kl_profiles"."joined"
      )
  );

INSERT INTO "klaviyo"."kl_profiles" (
  "segment_id",
  "id",
  "joined"
)
SELECT
  "s"."segment_id",
  "s"."id",
  "s"."joined"
FROM (
  SELECT
    "segment_id",
    "id",
    "joined"
  FROM (
    SELECT
      CAST("segment_id" AS VARCHAR(65535)) AS "segment_id",
      CAST("id" AS VARCHAR(65535)) AS "id",
      CAST("joined" AS TIMESTAMP WITH TIME ZONE) AS "joined",
      ROW_NUMBER() OVER (
        PARTITION BY "segment_id", "id"
        ORDER BY "joined" DESC NULLS LAST, "__klx_seq" DESC NULLS LAST
      ) AS "__klx_rank"
    FROM "__klx_batch"
  ) AS "ranked"
  WHERE
    "__klx_rank" = 1
) AS "s"
WHERE
  NOT EXISTS(
    SELECT
      1
    FROM "klaviyo"."kl_profiles" AS "t"
    WHERE
      "t"."segment_id" = "s"."segment_id" AND "t"."id" = "s"."id"
  );
