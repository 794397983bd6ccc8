CREATE TEMPORARY TABLE "__klx_batch" (
  "id" TEXT,
  "updated" TIMESTAMPTZ,
  "email" TEXT,
  "score" DOUBLE PRECISION,
  "subscribed" BOOLEAN,
  "count" BIGINT,
  "properties" TEXT
);
