MERGE INTO "KLAVIYO"."KL_PROFILES" AS "t"
USING (
  SELECT
    "SEGMENT_ID",
    "ID",
    "JOINED"
  FROM (
    SELECT
      CAST("SEGMENT_ID" AS VARCHAR) AS "SEGMENT_ID",
      CAST("ID" AS VARCHAR) AS "ID",
      CAST("JOINED" AS TIMESTAMPTZ) AS "JOINED",
      ROW_NUMBER() OVER (
        PARTITION BY "SEGMENT_ID", "ID"
        ORDER BY "JOINED" DESC NULLS LAST, "__klx_seq" DESC NULLS LAST
      ) AS "__klx_rank"
    FROM "__klx_batch"
  ) AS "ranked"
  WHERE
    "__klx_rank" = 1
) AS "s"
ON "t"."SEGMENT_ID" = "s"."SEGMENT_ID" AND "t"."ID" = "s"."ID"
WHEN MATCHED AND (
  "t"."JOINED" IS NULL OR "s"."JOINED" > "t"."JOINED"
) THEN UPDATE SET
  "SEGMENT_ID" = "s"."SEGMENT_ID",
  "ID" = "s"."ID",
  "JOINED" = "s"."JOINED"
WHEN NOT MATCHED THEN INSERT ("SEGMENT_ID", "ID", "JOINED") VALUES ("s"."SEGMENT_ID", "s"."ID", "s"."JOINED");
