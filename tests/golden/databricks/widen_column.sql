ALTER TABLE `klaviyo`.`kl_profiles`
ADD COLUMN `count__klx_widen` DOUBLE;

UPDATE `klaviyo`.`kl_profiles` SET `count__klx_widen` = CAST(`count` AS DOUBLE);

ALTER TABLE `klaviyo`.`kl_profiles`
DROP COLUMN `count`;

ALTER TABLE `klaviyo`.`kl_profiles`
RENAME COLUMN `count__klx_widen` TO `count`;
