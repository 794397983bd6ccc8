DELETE FROM "klaviyo"."kl_profiles"
WHERE
  EXISTS(
    SELECT
      1
    FROM (
      SELECT
        "id",
        "updated",
        "email",
        "score",
        "subscribed",
        "count",
        "properties"
      FROM (
        SELECT
          CAST("id" AS VARCHAR(65535)) AS "id",
          CAST("updated" AS TIMESTAMP WITH TIME ZONE) AS "updated",
          CAST("email" AS VARCHAR(65535)) AS "email",
          CAST("score" AS DOUBLE PRECISION) AS "score",
          CAST("subscribed" AS BOOLEAN) AS "subscribed",
          CAST("count" AS BIGINT) AS "count",
          JSON_PARSE("properties") AS "properties",
          ROW_NUMBER() OVER (PARTITION BY "id" ORDER BY "__klx_seq" DESC NULLS LAST) AS "__klx_rank"
        FROM "__klx_batch"
      ) AS "ranked"
      WHERE
        "__klx_rank" = 1
    ) AS "s"
    WHERE
      "klaviyo"."kl_profiles"."id" = "s"."id"
  );

INSERT INTO "klaviyo"."kl_profiles" (
  "id",
  "updated",
  "email",
  "score",
  "subscribed",
  "count",
  "properties"
)
SELECT
  "s"."id",
  "s"."updated",
  "s"."email",
  "s"."score",
  "s"."subscribed",
  "s"."count",
  "s"."properties"
FROM (
  SELECT
    "id",
    "updated",
    "email",
    "score",
    "subscribed",
    "count",
    "properties"
  FROM (
    SELECT
      CAST("id" AS VARCHAR(65535)) AS "id",
      CAST("updated" AS TIMESTAMP WITH TIME ZONE) AS "updated",
      CAST("email" AS VARCHAR(65535)) AS "email",
      CAST("score" AS DOUBLE PRECISION) AS "score",
      CAST("subscribed" AS BOOLEAN) AS "subscribed",
      CAST("count" AS BIGINT) AS "count",
      JSON_PARSE("properties") AS "properties",
      ROW_NUMBER() OVER (PARTITION BY "id" ORDER BY "__klx_seq" DESC NULLS LAST) AS "__klx_rank"
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
      "t"."id" = "s"."id"
  );
