ALTER TABLE `klaviyo`.`kl_profiles`
ADD COLUMN `properties__klx_widen` STRING;

UPDATE `klaviyo`.`kl_profiles` SET `properties__klx_widen` = CAST(`properties` AS STRING);

ALTER TABLE `klaviyo`.`kl_profiles`
DROP COLUMN `properties`;

ALTER TABLE `klaviyo`.`kl_profiles`
RENAME COLUMN `properties__klx_widen` TO `properties`;
