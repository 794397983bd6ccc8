"""engine.sql: the statements every destination runs, rendered per dialect."""

from __future__ import annotations

from typing import Callable

import pytest
from sqlglot import exp

from engine import sql
from engine.schema import Column, ColumnType

GOLDEN_DIALECTS = ["duckdb", "postgres", "snowflake"]
OTHER_DIALECTS = ["bigquery", "redshift"]

PROFILE_COLUMNS = [
    Column(name="id", type=ColumnType.TEXT),
    Column(name="updated", type=ColumnType.TIMESTAMP),
    Column(name="email", type=ColumnType.TEXT),
    Column(name="score", type=ColumnType.DOUBLE),
    Column(name="subscribed", type=ColumnType.BOOLEAN),
    Column(name="count", type=ColumnType.BIGINT),
    Column(name="properties", type=ColumnType.JSON),
]
MEMBER_COLUMNS = [
    Column(name="segment_id", type=ColumnType.TEXT),
    Column(name="id", type=ColumnType.TEXT),
    Column(name="joined", type=ColumnType.TIMESTAMP),
]


def _merge(columns: list[Column], key: tuple[str, ...], cursor: str | None) -> Callable[[str], exp.Expr]:
    def build(dialect: str) -> exp.Expr:
        rows = sql.staged_rows("__klx_batch", columns, key, cursor, dialect)
        return sql.merge("kl_profiles", rows, [c.name for c in columns], key, cursor, schema="klaviyo")

    return build


CASES: dict[str, Callable[[str], exp.Expr]] = {
    "create_table": lambda d: sql.create_table("kl_profiles", PROFILE_COLUMNS, d, schema="klaviyo"),
    "add_column": lambda d: sql.add_column(
        "kl_profiles", Column(name="phone", type=ColumnType.TEXT), d, schema="klaviyo"
    ),
    "widen_column": lambda d: sql.alter_column_type(
        "kl_profiles", Column(name="count", type=ColumnType.DOUBLE), d, schema="klaviyo"
    ),
    "widen_column_to_json": lambda d: sql.alter_column_type(
        "kl_profiles", Column(name="properties", type=ColumnType.JSON), d, schema="klaviyo"
    ),
    "merge_with_cursor": _merge(PROFILE_COLUMNS, ("id",), "updated"),
    "merge_without_cursor": _merge(PROFILE_COLUMNS, ("id",), None),
    "merge_composite_key": _merge(MEMBER_COLUMNS, ("segment_id", "id"), "joined"),
    "state_table": lambda d: sql.create_state_table("kl_", d, schema="klaviyo"),
    "state_upsert": lambda d: sql.upsert_state("kl_", d, schema="klaviyo"),
    "drop_shadow": lambda d: sql.drop_table("kl_profiles__klx_shadow", schema="klaviyo"),
    "swap_shadow": lambda d: sql.rename_table("kl_profiles__klx_shadow", "kl_profiles", schema="klaviyo"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dialect", GOLDEN_DIALECTS)
def test_rendered_sql_matches_golden_file(dialect: str, case: str, golden: Callable[[str, str], None]) -> None:
    golden(f"{dialect}/{case}.sql", sql.render(CASES[case](dialect), dialect, pretty=True))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dialect", OTHER_DIALECTS)
def test_other_dialects_render(dialect: str, case: str) -> None:
    assert sql.render(CASES[case](dialect), dialect)


@pytest.mark.parametrize("dialect", GOLDEN_DIALECTS)
@pytest.mark.parametrize("ctype", list(ColumnType))
def test_type_map_maps_back_to_the_same_column_type(dialect: str, ctype: ColumnType) -> None:
    assert sql.column_type_of(sql.data_type(ctype, dialect), dialect) is ctype


@pytest.mark.parametrize(
    ("reported", "ctype"),
    [
        ("BIGINT", ColumnType.BIGINT),
        ("DOUBLE", ColumnType.DOUBLE),
        ("BOOLEAN", ColumnType.BOOLEAN),
        ("VARCHAR", ColumnType.TEXT),
        ("TIMESTAMP WITH TIME ZONE", ColumnType.TIMESTAMP),
        ("JSON", ColumnType.JSON),
        ("INTEGER[]", None),
    ],
)
def test_duckdb_information_schema_types_map_to_column_types(reported: str, ctype: ColumnType | None) -> None:
    assert sql.column_type_of(exp.DataType.build(reported, dialect="duckdb"), "duckdb") is ctype


@pytest.mark.parametrize(
    ("current", "incoming", "result"),
    [
        (ColumnType.BIGINT, ColumnType.BIGINT, ColumnType.BIGINT),
        (ColumnType.BIGINT, ColumnType.DOUBLE, ColumnType.DOUBLE),
        (ColumnType.DOUBLE, ColumnType.BIGINT, ColumnType.DOUBLE),
        (ColumnType.DOUBLE, ColumnType.TEXT, ColumnType.TEXT),
        (ColumnType.BOOLEAN, ColumnType.BIGINT, ColumnType.TEXT),
        (ColumnType.TIMESTAMP, ColumnType.TEXT, ColumnType.TEXT),
        (ColumnType.TEXT, ColumnType.BIGINT, ColumnType.TEXT),
        (ColumnType.JSON, ColumnType.TEXT, ColumnType.TEXT),
    ],
)
def test_types_only_widen(current: ColumnType, incoming: ColumnType, result: ColumnType) -> None:
    assert sql.widest(current, incoming) is result


def test_every_identifier_is_quoted_even_reserved_words() -> None:
    columns = [Column(name="select", type=ColumnType.TEXT), Column(name="weird col", type=ColumnType.TEXT)]
    rendered = sql.render(_merge(columns, ("select",), "weird col")("duckdb"), "duckdb")
    assert '"select"' in rendered and '"weird col"' in rendered
    assert " select," not in rendered.lower().replace('"select"', "")


def test_identifiers_are_never_parsed_as_sql() -> None:
    hostile = 'x"; DROP TABLE t; --'
    rendered = sql.render(sql.create_table(hostile, [Column(name=hostile, type=ColumnType.TEXT)], "duckdb"), "duckdb")
    assert rendered == 'CREATE TABLE "x""; DROP TABLE t; --" ("x""; DROP TABLE t; --" TEXT)'


@pytest.mark.parametrize("dialect", GOLDEN_DIALECTS)
def test_state_values_travel_as_parameters(dialect: str) -> None:
    upsert = sql.upsert_state("kl_", dialect)
    assert len(list(upsert.find_all(exp.Placeholder))) == 2
    assert not list(upsert.find_all(exp.Literal))


def test_equal_cursor_does_not_match_the_update_branch() -> None:
    rendered = sql.render(_merge(MEMBER_COLUMNS, ("segment_id", "id"), "joined")("duckdb"), "duckdb")
    assert '"s"."joined" > "t"."joined"' in rendered
    assert ">=" not in rendered


def test_table_without_primary_key_is_staged_without_dedup() -> None:
    rows = sql.staged_rows("__klx_batch", MEMBER_COLUMNS, (), None, "duckdb")
    assert "ROW_NUMBER" not in sql.render(rows, "duckdb")
