CREATE TABLE "klaviyo"."kl_profiles__klx_shadow" AS
SELECT
  *
FROM "klaviyo"."kl_profiles"
WHERE
  FALSE;
