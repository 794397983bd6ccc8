ALTER TABLE "klaviyo"."kl_profiles"
ADD "phone" VARCHAR
