ALTER TABLE `klaviyo`.`kl_profiles`
ADD COLUMN `phone` STRING;
