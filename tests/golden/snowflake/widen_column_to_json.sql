ALTER TABLE "klaviyo"."kl_profiles"
ALTER COLUMN "properties" SET DATA TYPE VARIANT USING PARSE_JSON("properties")
