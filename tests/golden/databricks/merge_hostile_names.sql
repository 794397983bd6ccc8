MERGE INTO `klaviyo`.`kl_profiles` AS `t`
USING (
  SELECT
    `a"; DROP TABLE x; --`,
    `prénom_名前`,
    `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825`,
    `id`,
    `ID`,
    `order`,
    `select`
  FROM (
    SELECT
      CAST(`a"; DROP TABLE x; --` AS STRING) AS `a"; DROP TABLE x; --`,
      CAST(`prénom_名前` AS STRING) AS `prénom_名前`,
      CAST(`xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825` AS BIGINT) AS `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825`,
      CAST(`id` AS STRING) AS `id`,
      CAST(`ID` AS STRING) AS `ID`,
      CAST(`order` AS STRING) AS `order`,
      CAST(`select` AS STRING) AS `select`,
      ROW_NUMBER() OVER (PARTITION BY `id` ORDER BY `__klx_seq` DESC) AS `__klx_rank`
    FROM `__klx_batch`
  ) AS `ranked`
  WHERE
    `__klx_rank` = 1
) AS `s`
ON `t`.`id` = `s`.`id`
WHEN MATCHED THEN UPDATE SET
  `a"; DROP TABLE x; --` = `s`.`a"; DROP TABLE x; --`,
  `prénom_名前` = `s`.`prénom_名前`,
  `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825` = `s`.`xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825`,
  `id` = `s`.`id`,
  `ID` = `s`.`ID`,
  `order` = `s`.`order`,
  `select` = `s`.`select`
WHEN NOT MATCHED THEN INSERT (
  `a"; DROP TABLE x; --`,
  `prénom_名前`,
  `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825`,
  `id`,
  `ID`,
  `order`,
  `select`
) VALUES (
  `s`.`a"; DROP TABLE x; --`,
  `s`.`prénom_名前`,
  `s`.`xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825`,
  `s`.`id`,
  `s`.`ID`,
  `s`.`order`,
  `s`.`select`
);
