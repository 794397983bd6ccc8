DROP TABLE IF EXISTS `klaviyo`.`kl_profiles`;

ALTER TABLE `klaviyo`.`kl_profiles__klx_shadow`
RENAME TO `kl_profiles`;
