DROP TABLE IF EXISTS `klaviyo`.`kl_profiles__klx_shadow`;
