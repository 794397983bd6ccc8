CREATE TEMPORARY TABLE "__klx_batch" (
  "id" VARCHAR(65535),
  "updated" TIMESTAMP WITH TIME ZONE,
  "email" VARCHAR(65535),
  "score" DOUBLE PRECISION,
  "subscribed" BOOLEAN,
  "count" BIGINT,
  "properties" VARCHAR(65535)
);
