MERGE INTO `klaviyo`.`kl_profiles` AS `t`
USING (
  SELECT
    `id`,
    `updated`,
    `email`,
    `score`,
    `subscribed`,
    `count`,
    `properties`
  FROM (
    SELECT
      CAST(`id` AS STRING) AS `id`,
      CAST(`updated` AS TIMESTAMP) AS `updated`,
      CAST(`email` AS STRING) AS `email`,
      CAST(`score` AS FLOAT64) AS `score`,
      CAST(`subscribed` AS BOOL) AS `subscribed`,
      CAST(`count` AS INT64) AS `count`,
      PARSE_JSON(`properties`) AS `properties`,
      ROW_NUMBER() OVER (PARTITION BY `id` ORDER BY `updated` DESC, `__klx_seq` DESC) AS `__klx_rank`
    FROM `__klx_batch`
  ) AS `ranked`
  WHERE
    `__klx_rank` = 1
) AS `s`
ON `t`.`id` = `s`.`id`
WHEN MATCHED AND (
  `t`.`updated` IS NULL OR `s`.`updated` > `t`.`updated`
) THEN UPDATE SET
  `id` = `s`.`id`,
  `updated` = `s`.`updated`,
  `email` = `s`.`email`,
  `score` = `s`.`score`,
  `subscribed` = `s`.`subscribed`,
  `count` = `s`.`count`,
  `properties` = `s`.`properties`
WHEN NOT MATCHED THEN INSERT (`id`, `updated`, `email`, `score`, `subscribed`, `count`, `properties`) VALUES (
  `s`.`id`,
  `s`.`updated`,
  `s`.`email`,
  `s`.`score`,
  `s`.`subscribed`,
  `s`.`count`,
  `s`.`properties`
);
