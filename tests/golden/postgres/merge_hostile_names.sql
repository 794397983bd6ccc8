MERGE INTO "klaviyo"."kl_profiles" AS "t"
USING (
  SELECT
    "a""; DROP TABLE x; --",
    "prénom_名前",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
    "id",
    "ID",
    "order",
    "select"
  FROM (
    SELECT
      CAST("a""; DROP TABLE x; --" AS TEXT) AS "a""; DROP TABLE x; --",
      CAST("prénom_名前" AS TEXT) AS "prénom_名前",
      CAST("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825" AS BIGINT) AS "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
      CAST("id" AS TEXT) AS "id",
      CAST("ID" AS TEXT) AS "ID",
      CAST("order" AS TEXT) AS "order",
      CAST("select" AS JSONB) AS "select",
      ROW_NUMBER() OVER (PARTITION BY "id" ORDER BY "__klx_seq" DESC NULLS LAST) AS "__klx_rank"
    FROM "__klx_batch"
  ) AS "ranked"
  WHERE
    "__klx_rank" = 1
) AS "s"
ON "t"."id" = "s"."id"
WHEN MATCHED THEN UPDATE SET
  "a""; DROP TABLE x; --" = "s"."a""; DROP TABLE x; --",
  "prénom_名前" = "s"."prénom_名前",
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825" = "s"."xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
  "id" = "s"."id",
  "ID" = "s"."ID",
  "order" = "s"."order",
  "select" = "s"."select"
WHEN NOT MATCHED THEN INSERT (
  "a""; DROP TABLE x; --",
  "prénom_名前",
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
  "id",
  "ID",
  "order",
  "select"
) VALUES (
  "s"."a""; DROP TABLE x; --",
  "s"."prénom_名前",
  "s"."xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
  "s"."id",
  "s"."ID",
  "s"."order",
  "s"."select"
);
