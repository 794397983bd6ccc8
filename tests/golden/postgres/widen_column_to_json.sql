ALTER TABLE "klaviyo"."kl_profiles"
ALTER COLUMN "properties" SET DATA TYPE JSONB USING CAST("properties" AS JSONB);
