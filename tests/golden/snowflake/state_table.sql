CREATE TABLE IF NOT EXISTS "klaviyo"."kl_klx_state" (
  "stream" VARCHAR,
  "state" VARCHAR,
  "updated_at" TIMESTAMPTZ
)
