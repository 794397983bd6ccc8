CREATE TABLE "klaviyo"."kl_profiles" (
  "id" TEXT,
  "updated" TIMESTAMPTZ,
  "email" TEXT,
  "score" DOUBLE PRECISION,
  "subscribed" BOOLEAN,
  "count" BIGINT,
  "properties" JSONB
);
