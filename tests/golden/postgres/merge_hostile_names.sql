MERGE INTO "klaviyo"."kl_profiles" AS "t"
USING (
  SELECT
    "a""; drop table x; --",
    "prénom_名前",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
    "id",
    "id",
    "order",
    "select"
  FROM (
    SELECT
      CAST("a""; drop table x; --" AS TEXT) AS "a""; drop table x; --",
      CAST("prénom_名前" AS TEXT) AS "prénom_名前",
      CAST("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825" AS BIGINT) AS "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
      CAST("id" AS TEXT) AS "id",
      CAST("id" AS TEXT) AS "id",
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
  "a""; drop table x; --" = "s"."a""; drop table x; --",
  "prénom_名前" = "s"."prénom_名前",
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825" = "s"."xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
  "id" = "s"."id",
  "id" = "s"."id",
  "order" = "s"."order",
  "select" = "s"."select"
WHEN NOT MATCHED THEN INSERT (
  "a""; drop table x; --",
  "prénom_名前",
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
  "id",
  "id",
  "order",
  "select"
) VALUES (
  "s"."a""; drop table x; --",
  "s"."prénom_名前",
  "s"."xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825",
  "s"."id",
  "s"."id",
  "s"."order",
  "s"."select"
);
