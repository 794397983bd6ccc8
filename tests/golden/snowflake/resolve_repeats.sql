SELECT
  COUNT(*)
FROM (
  SELECT
    "SEGMENT_ID",
    "ID"
  FROM "KLAVIYO"."KL_MEMBERS__KLX_SHADOW"
  GROUP BY
    "SEGMENT_ID",
    "ID"
  HAVING
    COUNT(*) > 1
) AS "r";

SELECT
  SUM(IFF("__klx_rank" > 1, 1, 0)),
  SUM(
    IFF(
      "__klx_order" > 1 AND (
        "__klx_before" IS NULL OR "JOINED" > "__klx_before"
      ),
      1,
      0
    )
  )
FROM (
  SELECT
    "SEGMENT_ID",
    "ID",
    "UUID_TS",
    ROW_NUMBER() OVER (
      PARTITION BY "SEGMENT_ID", "ID"
      ORDER BY "JOINED" DESC NULLS LAST, CASE WHEN "JOINED" IS NULL THEN NULL ELSE "UUID_TS" END ASC, "UUID_TS" DESC NULLS LAST
    ) AS "__klx_rank",
    ROW_NUMBER() OVER (PARTITION BY "SEGMENT_ID", "ID" ORDER BY "UUID_TS" ASC) AS "__klx_order",
    "JOINED",
    MAX("JOINED") OVER (
      PARTITION BY "SEGMENT_ID", "ID"
      ORDER BY "UUID_TS" ASC
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS "__klx_before"
  FROM "KLAVIYO"."KL_MEMBERS__KLX_SHADOW"
  WHERE
    ("SEGMENT_ID", "ID") IN (
      SELECT
        "SEGMENT_ID",
        "ID"
      FROM "KLAVIYO"."KL_MEMBERS__KLX_SHADOW"
      GROUP BY
        "SEGMENT_ID",
        "ID"
      HAVING
        COUNT(*) > 1
    )
) AS "ranked";

DELETE FROM "KLAVIYO"."KL_MEMBERS__KLX_SHADOW"
WHERE
  ("SEGMENT_ID", "ID", "UUID_TS") IN (
    SELECT
      "SEGMENT_ID",
      "ID",
      "UUID_TS"
    FROM (
      SELECT
        "SEGMENT_ID",
        "ID",
        "UUID_TS",
        ROW_NUMBER() OVER (
          PARTITION BY "SEGMENT_ID", "ID"
          ORDER BY "JOINED" DESC NULLS LAST, CASE WHEN "JOINED" IS NULL THEN NULL ELSE "UUID_TS" END ASC, "UUID_TS" DESC NULLS LAST
        ) AS "__klx_rank",
        ROW_NUMBER() OVER (PARTITION BY "SEGMENT_ID", "ID" ORDER BY "UUID_TS" ASC) AS "__klx_order",
        "JOINED",
        MAX("JOINED") OVER (
          PARTITION BY "SEGMENT_ID", "ID"
          ORDER BY "UUID_TS" ASC
          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS "__klx_before"
      FROM "KLAVIYO"."KL_MEMBERS__KLX_SHADOW"
      WHERE
        ("SEGMENT_ID", "ID") IN (
          SELECT
            "SEGMENT_ID",
            "ID"
          FROM "KLAVIYO"."KL_MEMBERS__KLX_SHADOW"
          GROUP BY
            "SEGMENT_ID",
            "ID"
          HAVING
            COUNT(*) > 1
        )
    ) AS "ranked"
    WHERE
      "__klx_rank" > 1
  );
