CREATE TABLE "KLAVIYO"."KL_MEMBERS__KLX_PENDING" AS
SELECT
  "SEGMENT_ID",
  "ID",
  "JOINED"
FROM "KLAVIYO"."KL_MEMBERS"
WHERE
  FALSE;

SELECT
  SUM(IFF("__klx_present" IS NULL AND "__klx_order" = 1, 1, 0)),
  SUM(
    IFF(
      (
        "__klx_present" IS NOT NULL OR "__klx_order" > 1
      )
      AND (
        CASE
          WHEN "__klx_held" IS NULL
          THEN "__klx_before"
          WHEN "__klx_before" IS NULL
          THEN "__klx_held"
          WHEN "__klx_held" > "__klx_before"
          THEN "__klx_held"
          ELSE "__klx_before"
        END IS NULL
        OR "JOINED" > CASE
          WHEN "__klx_held" IS NULL
          THEN "__klx_before"
          WHEN "__klx_before" IS NULL
          THEN "__klx_held"
          WHEN "__klx_held" > "__klx_before"
          THEN "__klx_held"
          ELSE "__klx_before"
        END
      ),
      1,
      0
    )
  )
FROM (
  SELECT
    "h"."__klx_present",
    ROW_NUMBER() OVER (PARTITION BY "p"."SEGMENT_ID", "p"."ID" ORDER BY "p"."UUID_TS" ASC) AS "__klx_order",
    "p"."JOINED",
    MAX("p"."JOINED") OVER (
      PARTITION BY "p"."SEGMENT_ID", "p"."ID"
      ORDER BY "p"."UUID_TS" ASC
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS "__klx_before",
    "h"."__klx_held"
  FROM "KLAVIYO"."KL_MEMBERS__KLX_PENDING" AS "p"
  LEFT JOIN (
    SELECT
      "SEGMENT_ID",
      "ID",
      1 AS "__klx_present",
      MAX("JOINED") AS "__klx_held"
    FROM "KLAVIYO"."KL_MEMBERS" AS "t"
    WHERE
      EXISTS(
        SELECT
          1
        FROM "KLAVIYO"."KL_MEMBERS__KLX_PENDING" AS "p"
        WHERE
          "p"."SEGMENT_ID" = "t"."SEGMENT_ID" AND "p"."ID" = "t"."ID"
      )
    GROUP BY
      "SEGMENT_ID",
      "ID"
  ) AS "h"
    ON "p"."SEGMENT_ID" = "h"."SEGMENT_ID" AND "p"."ID" = "h"."ID"
) AS "ranked";

DELETE FROM "KLAVIYO"."KL_MEMBERS__KLX_PENDING"
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
      FROM "KLAVIYO"."KL_MEMBERS__KLX_PENDING"
      WHERE
        ("SEGMENT_ID", "ID") IN (
          SELECT
            "SEGMENT_ID",
            "ID"
          FROM "KLAVIYO"."KL_MEMBERS__KLX_PENDING"
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

MERGE INTO "KLAVIYO"."KL_MEMBERS" AS "t"
USING (
  SELECT
    "SEGMENT_ID",
    "ID",
    "JOINED"
  FROM "KLAVIYO"."KL_MEMBERS__KLX_PENDING"
) AS "s"
ON "t"."SEGMENT_ID" = "s"."SEGMENT_ID" AND "t"."ID" = "s"."ID"
WHEN MATCHED AND (
  "t"."JOINED" IS NULL OR "s"."JOINED" > "t"."JOINED"
) THEN UPDATE SET
  "SEGMENT_ID" = "s"."SEGMENT_ID",
  "ID" = "s"."ID",
  "JOINED" = "s"."JOINED"
WHEN NOT MATCHED THEN INSERT ("SEGMENT_ID", "ID", "JOINED") VALUES ("s"."SEGMENT_ID", "s"."ID", "s"."JOINED");

DELETE FROM "KLAVIYO"."KL_MEMBERS__KLX_PENDING";
