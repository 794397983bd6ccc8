CREATE TABLE "klaviyo"."kl_profiles" (
  "id" TEXT,
  "updated" TIMESTAMPTZ,
  "email" TEXT,
  "score" DOUBLE,
  "subscribed" BOOLEAN,
  "count" BIGINT,
  "properties" JSON
);
