ALTER TABLE `klaviyo`.`kl_profiles`
ADD COLUMN `properties__klx_widen` JSON;

UPDATE `klaviyo`.`kl_profiles` SET `properties__klx_widen` = PARSE_JSON(`properties`);

ALTER TABLE `klaviyo`.`kl_profiles`
DROP COLUMN `properties`;

ALTER TABLE `klaviyo`.`kl_profiles`
RENAME COLUMN `properties__klx_widen` TO `properties`;
