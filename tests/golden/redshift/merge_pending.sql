CREATE TABLE "klaviyo"."kl_members__klx_pending" AS
SELECT
  "segment_id",
  "id",
  "joined"
FROM "klaviyo"."kl_members"
WHERE
  FALSE;

SELECT
  SUM(CASE WHEN "__klx_present" IS NULL AND "__klx_order" = 1 THEN 1 ELSE 0 END),
  SUM(
    CASE
      WHEN (
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
        OR "joined" > CASE
          WHEN "__klx_held" IS NULL
          THEN "__klx_before"
          WHEN "__klx_before" IS NULL
          THEN "__klx_held"
          WHEN "__klx_held" > "__klx_before"
          THEN "__klx_held"
          ELSE "__klx_before"
        END
      )
      THEN 1
      ELSE 0
    END
  )
FROM (
  SELECT
    "h"."__klx_present",
    ROW_NUMBER() OVER (PARTITION BY "p"."segment_id", "p"."id" ORDER BY "p"."uuid_ts" ASC) AS "__klx_order",
    "p"."joined",
    MAX("p"."joined") OVER (
      PARTITION BY "p"."segment_id", "p"."id"
      ORDER BY "p"."uuid_ts" ASC
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS "__klx_before",
    "h"."__klx_held"
  FROM "klaviyo"."kl_members__klx_pending" AS "p"
  LEFT JOIN (
    SELECT
      "segment_id",
      "id",
      1 AS "__klx_present",
      MAX("joined") AS "__klx_held"
    FROM "klaviyo"."kl_members" AS "t"
    WHERE
      EXISTS(
        SELECT
          1
        FROM "klaviyo"."kl_members__klx_pending" AS "p"
        WHERE
          "p"."segment_id" = "t"."segment_id" AND "p"."id" = "t"."id"
      )
    GROUP BY
      "segment_id",
      "id"
  ) AS "h"
    ON "p"."segment_id" = "h"."segment_id" AND "p"."id" = "h"."id"
) AS "ranked";

DELETE FROM "klaviyo"."kl_members__klx_pending"
WHERE
  EXISTS(
    SELECT
      1
    FROM (
      SELECT
        "segment_id",
        "id",
        "uuid_ts"
      FROM (
        SELECT
          "segment_id",
          "id",
          "uuid_ts",
          ROW_NUMBER() OVER (
            PARTITION BY "segment_id", "id"
            ORDER BY "joined" DESC NULLS LAST, CASE WHEN "joined" IS NULL THEN NULL ELSE "uuid_ts" END ASC, "uuid_ts" DESC NULLS LAST
          ) AS "__klx_rank",
          ROW_NUMBER() OVER (PARTITION BY "segment_id", "id" ORDER BY "uuid_ts" ASC) AS "__klx_order",
          "joined",
          MAX("joined") OVER (
            PARTITION BY "segment_id", "id"
            ORDER BY "uuid_ts" ASC
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
          ) AS "__klx_before"
        FROM "klaviyo"."kl_members__klx_pending"
        WHERE
          EXISTS(
            SELECT
              1
            FROM (
              SELECT
                "segment_id",
                "id"
              FROM "klaviyo"."kl_members__klx_pending"
              GROUP BY
                "segment_id",
                "id"
              HAVING
                COUNT(*) > 1
            ) AS "__klx_row"
            WHERE
              "__klx_row"."segment_id" = "klaviyo"."kl_members__klx_pending"."segment_id"
              AND "__klx_row"."id" = "klaviyo"."kl_members__klx_pending"."id"
          )
      ) AS "ranked"
      WHERE
        "__klx_rank" > 1
    ) AS "__klx_row"
    WHERE
      "__klx_row"."segment_id" = "klaviyo"."kl_members__klx_pending"."segment_id"
      AND "__klx_row"."id" = "klaviyo"."kl_members__klx_pending"."id"
      AND "__klx_row"."uuid_ts" = "klaviyo"."kl_members__klx_pending"."uuid_ts"
  );

DELETE FROM "klaviyo"."kl_members"
WHERE
  EXISTS(
    SELECT
      1
    FROM (
      SELECT
        "segment_id",
        "id",
        "joined"
      FROM "klaviyo"."kl_members__klx_pending"
    ) AS "s"
    WHERE
      (
        "klaviyo"."kl_members"."segment_id" = "s"."segment_id"
        AND "klaviyo"."kl_members"."id" = "s"."id"
      )
      AND (
        "klaviyo"."kl_members"."joined" IS NULL
        OR "s"."joined" > "klaviyo"."kl_members"."joined"
      )
  );

INSERT INTO "klaviyo"."kl_members" (
  "segment_id",
  "id",
  "joined"
)
SELECT
  "s"."segment_id",
  "s"."id",
  "s"."joined"
FROM (
  SELECT
    "segment_id",
    "id",
    "joined"
  FROM "klaviyo"."kl_members__klx_pending"
) AS "s"
WHERE
  NOT EXISTS(
    SELECT
      1
    FROM "klaviyo"."kl_members" AS "t"
    WHERE
      "t"."segment_id" = "s"."segment_id" AND "t"."id" = "s"."id"
  );

DELETE FROM "klaviyo"."kl_members__klx_pending";
