ALTER TABLE "klaviyo"."kl_profiles"
ALTER COLUMN "properties" SET DATA TYPE JSON USING CAST("properties" AS JSON);
