CREATE TABLE IF NOT EXISTS `klaviyo`.`kl_klx_state` (
  `stream` STRING,
  `state` STRING,
  `updated_at` TIMESTAMP
);
