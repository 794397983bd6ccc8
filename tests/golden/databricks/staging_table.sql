CREATE TEMPORARY TABLE `__klx_batch` (
  `id` STRING,
  `updated` TIMESTAMP,
  `email` STRING,
  `score` DOUBLE,
  `subscribed` BOOLEAN,
  `count` BIGINT,
  `properties` STRING
)
USING PARQUET;
