ALTER TABLE "klaviyo"."kl_profiles"
ADD COLUMN "phone" VARCHAR(65535);
