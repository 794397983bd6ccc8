CREATE TABLE "klaviyo"."kl_profiles" (
  "a""; drop table x; --" VARCHAR(65535),
  "prénom_名前" VARCHAR(65535),
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_02fd6825" BIGINT,
  "id" VARCHAR(65535),
  "id" VARCHAR(65535),
  "order" VARCHAR(65535),
  "select" SUPER
);
