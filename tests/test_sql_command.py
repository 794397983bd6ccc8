"""`klx sql`: what a first run executes, printed in the destination's dialect or any other."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from engine.cli import main
from engine.dialects import DIALECTS


def config(tmp_path: Path, destination: list[str]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("\n".join([
        "source:", "  api_key: ${KLAVIYO_API_KEY}", "  start_date: 2024-01-01",
        "destination:", *destination, "  table_prefix: kl_",
        "resources:", "  profiles: incremental", "  segments_profiles: full_refresh", "  lists: incremental",
    ]) + "\n")
    return path


POSTGRES = ["  type: postgres", "  host: db.example.com", "  password: ${PGPASSWORD}", "  database: analytics", "  schema: klaviyo"]


def printed(capsys: pytest.CaptureFixture, *args: str) -> str:
    assert main(["sql", *args]) == 0
    return capsys.readouterr().out


def test_prints_the_configured_destinations_statements_without_secrets_or_a_connection(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("KLAVIYO_API_KEY", raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    out = printed(capsys, str(config(tmp_path, POSTGRES)), "--streams", "profiles")
    assert out.startswith("-- klx sql: the statements a first run of ")
    assert 'CREATE SCHEMA IF NOT EXISTS "klaviyo";' in out
    assert 'CREATE TABLE IF NOT EXISTS "klaviyo"."kl_klx_state"' in out
    assert 'MERGE INTO "klaviyo"."kl_rudder_profiles" AS "t"' in out
    assert '"t"."updated" IS NULL OR "s"."updated" > "t"."updated"' in out
    assert "CAST(%s AS TEXT)" in out  # the state travels as parameters
    assert "segments_profiles" not in out


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_every_dialects_statements_parse_back(tmp_path: Path, capsys, dialect: str) -> None:
    out = printed(capsys, str(config(tmp_path, POSTGRES)), "--dialect", dialect)
    parsed = [p for p in sqlglot.parse(out, read=dialect) if p is not None]
    creates = [p for p in parsed if isinstance(p, exp.Create) and p.kind == "TABLE"]
    assert len(creates) >= 4  # state table, two tables, one shadow
    assert any(isinstance(p, (exp.Merge, exp.Delete)) for p in parsed)


def test_full_refresh_fills_a_shadow_and_renames_it_into_place(tmp_path: Path, capsys) -> None:
    out = printed(capsys, str(config(tmp_path, POSTGRES)), "--streams", "segments_profiles")
    shadow = out.index('CREATE TABLE "klaviyo"."kl_rudder_segments_profiles__klx_shadow"')
    rename = out.index('ALTER TABLE "klaviyo"."kl_rudder_segments_profiles__klx_shadow"\nRENAME TO "kl_rudder_segments_profiles"')
    assert shadow < rename


def test_a_first_run_inserts_and_resolves_repeated_keys_and_later_runs_upsert(tmp_path: Path, capsys) -> None:
    out = printed(capsys, str(config(tmp_path, POSTGRES)), "--streams", "lists,segments_profiles")
    sections = {part.split("\n", 1)[0]: part for part in out.split("\n-- ")}
    first, later = sections["lists (incremental) -> kl_rudder_lists"], sections["lists: later runs into 25,000+ rows gather batches in a pending table, then merge them (smaller tables: each batch matched as it is written)"]
    refresh = sections["segments_profiles (full_refresh) -> kl_rudder_segments_profiles"]
    for section, table in ((first, "kl_rudder_lists"), (refresh, "kl_rudder_segments_profiles__klx_shadow")):
        assert section.count(f'INSERT INTO "klaviyo"."{table}"') == 2 and f'MERGE INTO "klaviyo"."{table}"' not in section
        resolve = section.index(f'DELETE FROM "klaviyo"."{table}"')  # the keys repeated across batches, resolved at the end
        assert resolve > section.rindex(f'INSERT INTO "klaviyo"."{table}"')
    assert 'MERGE INTO "klaviyo"."kl_rudder_lists" AS "t"' in later and 'INSERT INTO "klaviyo"."kl_rudder_lists"' not in later
    gather, merge = later.index('INSERT INTO "klaviyo"."kl_rudder_lists__klx_pending"'), later.index('MERGE INTO "klaviyo"."kl_rudder_lists" AS "t"')
    assert gather < merge < later.index('DROP TABLE IF EXISTS "klaviyo"."kl_rudder_lists__klx_pending"')


def test_snowflake_names_are_upper_case_and_json_goes_through_parse_json(tmp_path: Path, capsys) -> None:
    out = printed(capsys, str(config(tmp_path, POSTGRES)), "--dialect", "snowflake", "--streams", "lists")
    assert 'MERGE INTO "KLAVIYO"."KL_RUDDER_LISTS" AS "t"' in out


def test_each_sections_heading_names_the_table_as_the_warehouse_stores_it(tmp_path: Path, capsys) -> None:
    # The statements folded the prefix (KL_ -> kl_ on PostgreSQL, KL_ on Snowflake); the heading showed it as written.
    path = config(tmp_path, POSTGRES)
    path.write_text(path.read_text().replace("table_prefix: kl_", "table_prefix: KL_"))
    postgres = printed(capsys, str(path), "--streams", "lists")
    assert "-- lists (incremental) -> kl_rudder_lists\n" in postgres
    assert 'MERGE INTO "klaviyo"."kl_rudder_lists"' in postgres
    snowflake = printed(capsys, str(path), "--dialect", "snowflake", "--streams", "lists")
    assert "-- lists (incremental) -> KL_RUDDER_LISTS\n" in snowflake


def test_redshift_upserts_with_delete_and_insert(tmp_path: Path, capsys) -> None:
    out = printed(capsys, str(config(tmp_path, POSTGRES)), "--dialect", "redshift", "--streams", "lists")
    assert "MERGE" not in out
    assert 'DELETE FROM "klaviyo"."kl_rudder_lists"' in out and 'INSERT INTO "klaviyo"."kl_rudder_lists"' in out


def test_unknown_dialect_exits_2_naming_the_known_ones(tmp_path: Path, capsys) -> None:
    assert main(["sql", str(config(tmp_path, POSTGRES)), "--dialect", "oracle"]) == 2
    assert capsys.readouterr().err == (
        "error: --dialect: unknown 'oracle'; known: bigquery, databricks, duckdb, postgres, redshift, snowflake\n"
    )
