CREATE TABLE "klaviyo"."kl_profiles" (
  "a""; DROP TABLE x; --" VARCHAR(65535),
  "prénom_名前" VARCHAR(65535),
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825" BIGINT,
  "id" VARCHAR(65535),
  "ID" VARCHAR(65535),
  "order" VARCHAR(65535),
  "select" SUPER
);
