SELECT
  COUNT(*)
FROM (
  SELECT
    "segment_id",
    "id"
  FROM "klaviyo"."kl_members__klx_shadow"
  GROUP BY
    "segment_id",
    "id"
  HAVING
    COUNT(*) > 1
) AS "r";

SELECT
  SUM(CASE WHEN "__klx_rank" > 1 THEN 1 ELSE 0 END),
  SUM(
    CASE
      WHEN "__klx_order" > 1 AND (
        "__klx_before" IS NULL OR "joined" > "__klx_before"
      )
      THEN 1
      ELSE 0
    END
  )
FROM (
  SELECT
    "segment_id",
    "id",
    "uuid_ts",
    ROW_NUMBER() OVER (
      PARTITION BY "segment_id", "id"
      ORDER BY "joined" DESC NULLS LAST, CASE WHEN "joined" IS NULL THEN NULL ELSE "uuid_ts" END ASC, "uuid_ts" DESC NULLS LAST
    ) AS "__klx_rank",
    ROW_NUMBER() OVER (PARTITION BY "segment_id", "id" ORDER BY "uuid_ts" ASC) AS "__klx_order",
    "joined",
    MAX("joined") OVER (
      PARTITION BY "segment_id", "id"
      ORDER BY "uuid_ts" ASC
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS "__klx_before"
  FROM "klaviyo"."kl_members__klx_shadow"
  WHERE
    EXISTS(
      SELECT
        1
      FROM (
        SELECT
          "segment_id",
          "id"
        FROM "klaviyo"."kl_members__klx_shadow"
        GROUP BY
          "segment_id",
          "id"
        HAVING
          COUNT(*) > 1
      ) AS "__klx_row"
      WHERE
        "__klx_row"."segment_id" = "klaviyo"."kl_members__klx_shadow"."segment_id"
        AND "__klx_row"."id" = "klaviyo"."kl_members__klx_shadow"."id"
    )
) AS "ranked";

DELETE FROM "klaviyo"."kl_members__klx_shadow"
WHERE
  EXISTS(
    SELECT
      1
    FROM (
      SELECT
        "segment_id",
        "id",
        "uuid_ts"
      FROM (
        SELECT
          "segment_id",
          "id",
          "uuid_ts",
          ROW_NUMBER() OVER (
            PARTITION BY "segment_id", "id"
            ORDER BY "joined" DESC NULLS LAST, CASE WHEN "joined" IS NULL THEN NULL ELSE "uuid_ts" END ASC, "uuid_ts" DESC NULLS LAST
          ) AS "__klx_rank",
          ROW_NUMBER() OVER (PARTITION BY "segment_id", "id" ORDER BY "uuid_ts" ASC) AS "__klx_order",
          "joined",
          MAX("joined") OVER (
            PARTITION BY "segment_id", "id"
            ORDER BY "uuid_ts" ASC
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
          ) AS "__klx_before"
        FROM "klaviyo"."kl_members__klx_shadow"
        WHERE
          EXISTS(
            SELECT
              1
            FROM (
              SELECT
                "segment_id",
                "id"
              FROM "klaviyo"."kl_members__klx_shadow"
              GROUP BY
                "segment_id",
                "id"
              HAVING
                COUNT(*) > 1
            ) AS "__klx_row"
            WHERE
              "__klx_row"."segment_id" = "klaviyo"."kl_members__klx_shadow"."segment_id"
              AND "__klx_row"."id" = "klaviyo"."kl_members__klx_shadow"."id"
          )
      ) AS "ranked"
      WHERE
        "__klx_rank" > 1
    ) AS "__klx_row"
    WHERE
      "__klx_row"."segment_id" = "klaviyo"."kl_members__klx_shadow"."segment_id"
      AND "__klx_row"."id" = "klaviyo"."kl_members__klx_shadow"."id"
      AND "__klx_row"."uuid_ts" = "klaviyo"."kl_members__klx_shadow"."uuid_ts"
  );
