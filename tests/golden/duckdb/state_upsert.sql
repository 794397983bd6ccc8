MERGE INTO "klaviyo"."kl_klx_state" AS "t"
USING (
  SELECT
    CAST(? AS TEXT) AS "stream",
    CAST(? AS TEXT) AS "state",
    CURRENT_TIMESTAMP AS "updated_at"
) AS "s"
ON "t"."stream" = "s"."stream"
WHEN MATCHED THEN UPDATE SET
  "stream" = "s"."stream",
  "state" = "s"."state",
  "updated_at" = "s"."updated_at"
WHEN NOT MATCHED THEN INSERT ("stream", "state", "updated_at") VALUES ("s"."stream", "s"."state", "s"."updated_at");
