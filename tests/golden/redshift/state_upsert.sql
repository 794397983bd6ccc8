DELETE FROM "klaviyo"."kl_klx_state"
WHERE
  EXISTS(
    SELECT
      1
    FROM (
      SELECT
        CAST(%s AS VARCHAR(65535)) AS "stream",
        CAST(%s AS VARCHAR(65535)) AS "state",
        GETDATE() AS "updated_at"
    ) AS "s"
    WHERE
      "klaviyo"."kl_klx_state"."stream" = "s"."stream"
  );

INSERT INTO "klaviyo"."kl_klx_state" (
  "stream",
  "state",
  "updated_at"
)
SELECT
  "s"."stream",
  "s"."state",
  "s"."updated_at"
FROM (
  SELECT
    CAST(%s AS VARCHAR(65535)) AS "stream",
    CAST(%s AS VARCHAR(65535)) AS "state",
    GETDATE() AS "updated_at"
) AS "s"
WHERE
  NOT EXISTS(
    SELECT
      1
    FROM "klaviyo"."kl_klx_state" AS "t"
    WHERE
      "t"."stream" = "s"."stream"
  );
