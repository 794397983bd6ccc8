MERGE INTO "klaviyo"."kl_profiles" AS "t"
USING (
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
      CAST("id" AS TEXT) AS "id",
      CAST("updated" AS TIMESTAMPTZ) AS "updated",
      CAST("email" AS TEXT) AS "email",
      CAST("score" AS DOUBLE PRECISION) AS "score",
      CAST("subscribed" AS BOOLEAN) AS "subscribed",
      CAST("count" AS BIGINT) AS "count",
      CAST("properties" AS JSONB) AS "properties",
      ROW_NUMBER() OVER (PARTITION BY "id" ORDER BY "__klx_seq" DESC NULLS LAST) AS "__klx_rank"
    FROM "__klx_batch"
  ) AS "ranked"
  WHERE
    "__klx_rank" = 1
) AS "s"
ON "t"."id" = "s"."id"
WHEN MATCHED THEN UPDATE SET
  "id" = "s"."id",
  "updated" = "s"."updated",
  "email" = "s"."email",
  "score" = "s"."score",
  "subscribed" = "s"."subscribed",
  "count" = "s"."count",
  "properties" = "s"."properties"
WHEN NOT MATCHED THEN INSERT ("id", "updated", "email", "score", "subscribed", "count", "properties") VALUES (
  "s"."id",
  "s"."updated",
  "s"."email",
  "s"."score",
  "s"."subscribed",
  "s"."count",
  "s"."properties"
);
