SELECT
  COUNT(*)
FROM (
  SELECT
    `segment_id`,
    `id`
  FROM `klaviyo`.`kl_members__klx_shadow`
  GROUP BY
    `segment_id`,
    `id`
  HAVING
    COUNT(*) > 1
) AS `r`;

SELECT
  SUM(IF(`__klx_rank` > 1, 1, 0)),
  SUM(
    IF(
      `__klx_order` > 1 AND (
        `__klx_before` IS NULL OR `joined` > `__klx_before`
      ),
      1,
      0
    )
  )
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
  FROM `klaviyo`.`kl_members__klx_shadow`
  WHERE
    (`segment_id`, `id`) IN (
      SELECT AS STRUCT
        `segment_id`,
        `id`
      FROM `klaviyo`.`kl_members__klx_shadow`
      GROUP BY
        `segment_id`,
        `id`
      HAVING
        COUNT(*) > 1
    )
) AS `ranked`;

DELETE FROM `klaviyo`.`kl_members__klx_shadow`
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
      FROM `klaviyo`.`kl_members__klx_shadow`
      WHERE
        (`segment_id`, `id`) IN (
          SELECT AS STRUCT
            `segment_id`,
            `id`
          FROM `klaviyo`.`kl_members__klx_shadow`
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
