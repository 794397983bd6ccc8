CREATE TABLE "klaviyo"."kl_profiles" (
  "a""; DROP TABLE x; --" TEXT,
  "prénom_名前" TEXT,
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825" BIGINT,
  "id" TEXT,
  "ID" TEXT,
  "order" TEXT,
  "select" JSONB
);
