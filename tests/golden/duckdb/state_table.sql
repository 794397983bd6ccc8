CREATE TABLE IF NOT EXISTS "klaviyo"."kl_klx_state" (
  "stream" TEXT,
  "state" TEXT,
  "updated_at" TIMESTAMPTZ
);
