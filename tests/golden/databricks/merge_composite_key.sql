MERGE INTO `klaviyo`.`kl_profiles` AS `t`
USING (
  SELECT
    `segment_id`,
    `id`,
    `joined`
  FROM (
    SELECT
      CAST(`segment_id` AS STRING) AS `segment_id`,
      CAST(`id` AS STRING) AS `id`,
      CAST(`joined` AS TIMESTAMP) AS `joined`,
      ROW_NUMBER() OVER (PARTITION BY `segment_id`, `id` ORDER BY `joined` DESC, `__klx_seq` DESC) AS `__klx_rank`
    FROM `__klx_batch`
  ) AS `ranked`
  WHERE
    `__klx_rank` = 1
) AS `s`
ON `t`.`segment_id` = `s`.`segment_id` AND `t`.`id` = `s`.`id`
WHEN MATCHED AND (
  `t`.`joined` IS NULL OR `s`.`joined` > `t`.`joined`
) THEN UPDATE SET
  `segment_id` = `s`.`segment_id`,
  `id` = `s`.`id`,
  `joined` = `s`.`joined`
WHEN NOT MATCHED THEN INSERT (`segment_id`, `id`, `joined`) VALUES (`s`.`segment_id`, `s`.`id`, `s`.`joined`);
