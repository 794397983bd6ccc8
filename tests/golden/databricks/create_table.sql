CREATE TABLE `klaviyo`.`kl_profiles` (
  `id` STRING,
  `updated` TIMESTAMP,
  `email` STRING,
  `score` DOUBLE,
  `subscribed` BOOLEAN,
  `count` BIGINT,
  `properties` STRING
);
