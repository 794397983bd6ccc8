CREATE TABLE "klaviyo"."kl_profiles" (
  "a""; drop table x; --" TEXT,
  "prénom_名前" TEXT,
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825" BIGINT,
  "id" TEXT,
  "id" TEXT,
  "order" TEXT,
  "select" JSONB
);
