CREATE TABLE "klaviyo"."kl_profiles" (
  "id" VARCHAR,
  "updated" TIMESTAMPTZ,
  "email" VARCHAR,
  "score" DOUBLE,
  "subscribed" BOOLEAN,
  "count" BIGINT,
  "properties" VARIANT
)
