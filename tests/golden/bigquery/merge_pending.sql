CREATE TABLE `klaviyo`.`kl_members__klx_pending` AS
SELECT
  `segment_id`,
  `id`,
  `joined`
FROM `klaviyo`.`kl_members`
WHERE
  FALSE;

SELECT
  SUM(IF(`__klx_present` IS NULL AND `__klx_order` = 1, 1, 0)),
  SUM(
    IF(
      (
        `__klx_present` IS NOT NULL OR `__klx_order` > 1
      )
      AND (
        CASE
          WHEN `__klx_held` IS NULL
          THEN `__klx_before`
          WHEN `__klx_before` IS NULL
          THEN `__klx_held`
          WHEN `__klx_held` > `__klx_before`
          THEN `__klx_held`
          ELSE `__klx_before`
        END IS NULL
        OR `joined` > CASE
          WHEN `__klx_held` IS NULL
          THEN `__klx_before`
          WHEN `__klx_before` IS NULL
          THEN `__klx_held`
          WHEN `__klx_held` > `__klx_before`
          THEN `__klx_held`
          ELSE `__klx_before`
        END
      ),
      1,
      0
    )
  )
FROM (
  SELECT
    `h`.`__klx_present`,
    ROW_NUMBER() OVER (PARTITION BY `p`.`segment_id`, `p`.`id` ORDER BY `p`.`uuid_ts` ASC NULLS LAST) AS `__klx_order`,
    `p`.`joined`,
    MAX(`p`.`joined`) OVER (
      PARTITION BY `p`.`segment_id`, `p`.`id`
      ORDER BY `p`.`uuid_ts` ASC
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS `__klx_before`,
    `h`.`__klx_held`
  FROM `klaviyo`.`kl_members__klx_pending` AS `p`
  LEFT JOIN (
    SELECT
      `segment_id`,
      `id`,
      1 AS `__klx_present`,
      MAX(`joined`) AS `__klx_held`
    FROM `klaviyo`.`kl_members` AS `t`
    WHERE
      EXISTS(
        SELECT
          1
        FROM `klaviyo`.`kl_members__klx_pending` AS `p`
        WHERE
          `p`.`segment_id` = `t`.`segment_id` AND `p`.`id` = `t`.`id`
      )
    GROUP BY
      `segment_id`,
      `id`
  ) AS `h`
    ON `p`.`segment_id` = `h`.`segment_id` AND `p`.`id` = `h`.`id`
) AS `ranked`;

DELETE FROM `klaviyo`.`kl_members__klx_pending`
WHERE
  (`segment_id`, `id`, `uuid_ts`) IN (
    SELECT AS STRUCT
      `segment_id`,
      `id`,
      `uuid_ts`
    FROM (
      SELECT
        `segment_id`,
        `id`,
        `uuid_ts`,
        ROW_NUMBER() OVER (
          PARTITION BY `segment_id`, `id`
          ORDER BY `joined` DESC, CASE WHEN `joined` IS NULL THEN NULL ELSE `uuid_ts` END ASC NULLS LAST, `uuid_ts` DESC
        ) AS `__klx_rank`,
        ROW_NUMBER() OVER (PARTITION BY `segment_id`, `id` ORDER BY `uuid_ts` ASC NULLS LAST) AS `__klx_order`,
        `joined`,
        MAX(`joined`) OVER (
          PARTITION BY `segment_id`, `id`
          ORDER BY `uuid_ts` ASC
          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS `__klx_before`
      FROM `klaviyo`.`kl_members__klx_pending`
      WHERE
        (`segment_id`, `id`) IN (
          SELECT AS STRUCT
            `segment_id`,
            `id`
          FROM `klaviyo`.`kl_members__klx_pending`
          GROUP BY
            `segment_id`,
            `id`
          HAVING
            COUNT(*) > 1
        )
    ) AS `ranked`
    WHERE
      `__klx_rank` > 1
  );

MERGE INTO `klaviyo`.`kl_members` AS `t`
USING (
  SELECT
    `segment_id`,
    `id`,
    `joined`
  FROM `klaviyo`.`kl_members__klx_pending`
) AS `s`
ON `t`.`segment_id` = `s`.`segment_id` AND `t`.`id` = `s`.`id`
WHEN MATCHED AND (
  `t`.`joined` IS NULL OR `s`.`joined` > `t`.`joined`
) THEN UPDATE SET
  `segment_id` = `s`.`segment_id`,
  `id` = `s`.`id`,
  `joined` = `s`.`joined`
WHEN NOT MATCHED THEN INSERT (`segment_id`, `id`, `joined`) VALUES (`s`.`segment_id`, `s`.`id`, `s`.`joined`);

DELETE FROM `klaviyo`.`kl_members__klx_pending`;
