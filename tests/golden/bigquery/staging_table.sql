CREATE TEMPORARY TABLE `__klx_batch` (
  `id` STRING,
  `updated` TIMESTAMP,
  `email` STRING,
  `score` FLOAT64,
  `subscribed` BOOL,
  `count` INT64,
  `properties` STRING
);
