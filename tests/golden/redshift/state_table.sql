CREATE TABLE IF NOT EXISTS "klaviyo"."kl_klx_state" (
  "stream" VARCHAR(65535),
  "state" VARCHAR(65535),
  "updated_at" TIMESTAMP WITH TIME ZONE
);
