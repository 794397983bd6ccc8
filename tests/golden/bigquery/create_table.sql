CREATE TABLE `klaviyo`.`kl_profiles` (
  `id` STRING,
  `updated` TIMESTAMP,
  `email` STRING,
  `score` FLOAT64,
  `subscribed` BOOL,
  `count` INT64,
  `properties` JSON
);
