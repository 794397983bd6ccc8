DELETE FROM "klaviyo"."kl_profiles"
WHERE
  EXISTS(
    SELECT
      1
    FROM (
      SELECT
        "a""; drop table x; --",
        "prénom_名前",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
        "id",
        "id",
        "order",
        "select"
      FROM (
        SELECT
          CAST("a""; drop table x; --" AS VARCHAR(65535)) AS "a""; drop table x; --",
          CAST("prénom_名前" AS VARCHAR(65535)) AS "prénom_名前",
          CAST("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825" AS BIGINT) AS "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
          CAST("id" AS VARCHAR(65535)) AS "id",
          CAST("id" AS VARCHAR(65535)) AS "id",
          CAST("order" AS VARCHAR(65535)) AS "order",
          JSON_PARSE("select") AS "select",
          ROW_NUMBER() OVER (PARTITION BY "id" ORDER BY "__klx_seq" DESC NULLS LAST) AS "__klx_rank"
        FROM "__klx_batch"
      ) AS "ranked"
      WHERE
        "__klx_rank" = 1
    ) AS "s"
    WHERE
      "klaviyo"."kl_profiles"."id" = "s"."id"
  );

INSERT INTO "klaviyo"."kl_profiles" (
  "a""; drop table x; --",
  "prénom_名前",
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
  "id",
  "id",
  "order",
  "select"
)
SELECT
  "s"."a""; drop table x; --",
  "s"."prénom_名前",
  "s"."xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
  "s"."id",
  "s"."id",
  "s"."order",
  "s"."select"
FROM (
  SELECT
    "a""; drop table x; --",
    "prénom_名前",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
    "id",
    "id",
    "order",
    "select"
  FROM (
    SELECT
      CAST("a""; drop table x; --" AS VARCHAR(65535)) AS "a""; drop table x; --",
      CAST("prénom_名前" AS VARCHAR(65535)) AS "prénom_名前",
      CAST("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825" AS BIGINT) AS "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
      CAST("id" AS VARCHAR(65535)) AS "id",
      CAST("id" AS VARCHAR(65535)) AS "id",
      CAST("order" AS VARCHAR(65535)) AS "order",
      JSON_PARSE("select") AS "select",
      ROW_NUMBER() OVER (PARTITION BY "id" ORDER BY "__klx_seq" DESC NULLS LAST) AS "__klx_rank"
    FROM "__klx_batch"
  ) AS "ranked"
  WHERE
    "__klx_rank" = 1
) AS "s"
WHERE
  NOT EXISTS(
    SELECT
      1
    FROM "klaviyo"."kl_profiles" AS "t"
    WHERE
      "t"."id" = "s"."id"
  );
