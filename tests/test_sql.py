"""engine.sql: the statements every destination runs, rendered per dialect."""

from __future__ import annotations

from typing import Callable

import pytest
from sqlglot import exp

import sqlglot

from engine import sql
from engine.dialects import DIALECTS, dialect as rules
from engine.schema import Column, ColumnType

GOLDEN_DIALECTS = sorted(DIALECTS)

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


def _fold(columns: list[Column], dialect: str) -> list[Column]:
    return [Column(name=rules(dialect).identifier(c.name), type=c.type) for c in columns]


def _merge(columns: list[Column], key: tuple[str, ...], cursor: str | None) -> Callable[[str], list[exp.Expr]]:
    def build(dialect: str) -> list[exp.Expr]:
        name = rules(dialect).identifier
        folded = _fold(columns, dialect)
        keys = tuple(name(k) for k in key)
        rows = sql.staged_rows("__klx_batch", folded, keys, name(cursor) if cursor else None, dialect)
        names = [c.name for c in folded]
        return sql.upsert(name("kl_profiles"), rows, names, keys, name(cursor) if cursor else None, dialect, schema=name("klaviyo"))

    return build


def _one(build: Callable[[str], exp.Expr]) -> Callable[[str], list[exp.Expr]]:
    return lambda d: [build(d)]


HOSTILE = [
    Column(name='a"; DROP TABLE x; --', type=ColumnType.TEXT),
    Column(name="prénom_名前", type=ColumnType.TEXT),
    Column(name="x" * 300, type=ColumnType.BIGINT),
    Column(name="id", type=ColumnType.TEXT),
    Column(name="ID", type=ColumnType.TEXT),
    Column(name="order", type=ColumnType.TEXT),
    Column(name="select", type=ColumnType.JSON),
]

CASES: dict[str, Callable[[str], list[exp.Expr]]] = {
    "create_table": _one(lambda d: sql.create_table(rules(d).identifier("kl_profiles"), _fold(PROFILE_COLUMNS, d), d, schema=rules(d).identifier("klaviyo"))),
    "create_table_hostile_names": _one(lambda d: sql.create_table(rules(d).identifier("kl_profiles"), _fold(HOSTILE, d), d, schema=rules(d).identifier("klaviyo"))),
    "add_column": _one(lambda d: sql.add_column(
        rules(d).identifier("kl_profiles"), Column(name=rules(d).identifier("phone"), type=ColumnType.TEXT), d, schema=rules(d).identifier("klaviyo")
    )),
    "widen_column": lambda d: sql.widen_column(
        rules(d).identifier("kl_profiles"), Column(name=rules(d).identifier("count"), type=ColumnType.DOUBLE), d, schema=rules(d).identifier("klaviyo")
    ),
    "widen_column_to_json": lambda d: sql.widen_column(
        rules(d).identifier("kl_profiles"), Column(name=rules(d).identifier("properties"), type=ColumnType.JSON), d, schema=rules(d).identifier("klaviyo")
    ),
    "merge_with_cursor": _merge(PROFILE_COLUMNS, ("id",), "updated"),
    "merge_without_cursor": _merge(PROFILE_COLUMNS, ("id",), None),
    "merge_composite_key": _merge(MEMBER_COLUMNS, ("segment_id", "id"), "joined"),
    "merge_hostile_names": _merge(HOSTILE, ("id",), None),
    "state_table": _one(lambda d: sql.create_state_table("kl_", d, schema=rules(d).identifier("klaviyo"))),
    "state_upsert": lambda d: sql.upsert_state("kl_", d, schema=rules(d).identifier("klaviyo")),
    "create_shadow": _one(lambda d: sql.create_shadow(
        rules(d).identifier("kl_profiles__klx_shadow"), rules(d).identifier("kl_profiles"), d, schema=rules(d).identifier("klaviyo")
    )),
    "drop_shadow": _one(lambda d: sql.drop_table(rules(d).identifier("kl_profiles__klx_shadow"), schema=rules(d).identifier("klaviyo"))),
    "swap_shadow": lambda d: sql.swap_in(
        rules(d).identifier("kl_profiles__klx_shadow"), rules(d).identifier("kl_profiles"), d, target_exists=True, schema=rules(d).identifier("klaviyo")
    ),
    "staging_table": _one(lambda d: sql.create_temporary_table("__klx_batch", _fold(PROFILE_COLUMNS, d), d)),
    # A full refresh's finish: keys written more than once, the rows MERGEs in load order would not have kept, their deletion.
    "resolve_repeats": lambda d: (lambda shadow, key, cursor, loaded, schema: [
        sql.count_repeated_keys(shadow, key, schema=schema),
        sql.superseded_counts(shadow, key, cursor, loaded, schema=schema),
        sql.delete_superseded(shadow, key, cursor, loaded, schema=schema),
    ])(rules(d).identifier("kl_members__klx_shadow"), tuple(rules(d).identifier(k) for k in ("segment_id", "id")),
       rules(d).identifier("joined"), rules(d).identifier("uuid_ts"), rules(d).identifier("klaviyo")),
    # A later incremental run's merge of the rows it gathered: its counts, the pending table made, merged and emptied.
    "merge_pending": lambda d: (lambda pending, target, key, cursor, loaded, names, schema: [
        sql.create_table_like(pending, target, schema=schema, columns=names),
        sql.pending_counts(pending, target, key, cursor, loaded, schema=schema),
        sql.delete_superseded(pending, key, cursor, loaded, schema=schema),
        *sql.upsert(target, sql.table_rows(pending, names, schema=schema), names, key, cursor, d, schema=schema),
        sql.delete_all(pending, schema=schema),
    ])(rules(d).identifier("kl_members__klx_pending"), rules(d).identifier("kl_members"),
       tuple(rules(d).identifier(k) for k in ("segment_id", "id")), rules(d).identifier("joined"), rules(d).identifier("uuid_ts"),
       [rules(d).identifier(c.name) for c in MEMBER_COLUMNS], rules(d).identifier("klaviyo")),
}


def _text(statements: list[exp.Expr], dialect: str) -> str:
    return "\n\n".join(sql.render(s, dialect, pretty=True) + ";" for s in statements)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dialect", GOLDEN_DIALECTS)
def test_rendered_sql_matches_golden_file(dialect: str, case: str, golden: Callable[[str, str], None]) -> None:
    golden(f"{dialect}/{case}.sql", _text(CASES[case](dialect), dialect))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dialect", GOLDEN_DIALECTS)
def test_golden_sql_parses_back_in_its_own_dialect(dialect: str, case: str) -> None:
    statements = CASES[case](dialect)
    parsed = sqlglot.parse(_text(statements, dialect), read=dialect)
    assert len([p for p in parsed if p is not None]) == len(statements)
    # sqlglot 30.22 reads Databricks' ALTER TABLE ... DROP COLUMN back as a generic Command: still one statement.
    assert [type(p) for p in parsed] == [exp.Command if type(p) is exp.Command else type(s) for p, s in zip(parsed, statements)]


@pytest.mark.parametrize("dialect", GOLDEN_DIALECTS)
def test_hostile_names_stay_inside_quoted_identifiers(dialect: str) -> None:
    (create,) = CASES["create_table_hostile_names"](dialect)
    (again,) = sqlglot.parse(sql.render(create, dialect), read=dialect)
    names = [d.this.this for d in again.this.expressions]
    assert names == [c.name for c in _fold(HOSTILE, dialect)]
    assert len(set(names)) == len(HOSTILE) - (1 if rules(dialect).fold else 0)  # Snowflake, PostgreSQL fold ID and id alike
    assert all(len(n.encode()) <= rules(dialect).max_identifier for n in names)


@pytest.mark.parametrize(
    ("dialect", "json_type"),
    [("duckdb", "JSON"), ("postgres", "JSONB"), ("snowflake", "VARIANT"), ("redshift", "SUPER"), ("bigquery", "JSON"), ("databricks", "STRING")],
)
def test_json_columns_use_each_warehouses_json_type(dialect: str, json_type: str) -> None:
    assert sql.data_type(ColumnType.JSON, dialect).sql(dialect) == json_type


@pytest.mark.parametrize(("dialect", "limit"), [("postgres", 63), ("redshift", 127), ("snowflake", 255), ("bigquery", 300)])
def test_long_names_are_shortened_deterministically_to_the_dialects_limit(dialect: str, limit: int) -> None:
    long = "properties_" + "very_long_name_" * 30
    shortened = rules(dialect).identifier(long)
    assert len(shortened.encode()) == limit
    assert shortened == rules(dialect).identifier(long)
    assert shortened != rules(dialect).identifier(long + "x")


def test_snowflake_names_are_upper_case_so_unquoted_queries_find_them() -> None:
    assert rules("snowflake").identifier("kl_rudder_profiles") == "KL_RUDDER_PROFILES"
    assert rules("postgres").identifier("kl_rudder_profiles") == "kl_rudder_profiles"


def test_redshift_upserts_with_delete_and_insert() -> None:
    statements = _merge(PROFILE_COLUMNS, ("id",), "updated")("redshift")
    assert [type(s) for s in statements] == [exp.Delete, exp.Insert]


@pytest.mark.parametrize("dialect", GOLDEN_DIALECTS)
@pytest.mark.parametrize("ctype", list(ColumnType))
def test_type_map_maps_back_to_the_same_warehouse_type(dialect: str, ctype: ColumnType) -> None:
    # Databricks stores JSON as STRING, so JSON maps back to TEXT there: the same warehouse type.
    back = sql.column_type_of(sql.data_type(ctype, dialect), dialect)
    assert back is not None and sql.data_type(back, dialect) == sql.data_type(ctype, dialect)


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
    rendered = _text(_merge(columns, ("select",), "weird col")("duckdb"), "duckdb")
    assert '"select"' in rendered and '"weird col"' in rendered
    assert " select," not in rendered.lower().replace('"select"', "")


def test_identifiers_are_never_parsed_as_sql() -> None:
    hostile = 'x"; DROP TABLE t; --'
    rendered = sql.render(sql.create_table(hostile, [Column(name=hostile, type=ColumnType.TEXT)], "duckdb"), "duckdb")
    assert rendered == 'CREATE TABLE "x""; DROP TABLE t; --" ("x""; DROP TABLE t; --" TEXT)'


@pytest.mark.parametrize("dialect", GOLDEN_DIALECTS)
def test_state_values_travel_as_parameters(dialect: str) -> None:
    for upsert in sql.upsert_state("kl_", dialect):
        assert len(list(upsert.find_all(exp.Placeholder))) == 2
        assert len(sql.state_parameters(upsert, "profiles", "{}")) == 2


def test_equal_cursor_does_not_match_the_update_branch() -> None:
    rendered = _text(_merge(MEMBER_COLUMNS, ("segment_id", "id"), "joined")("duckdb"), "duckdb")
    assert '"s"."joined" > "t"."joined"' in rendered
    assert ">=" not in rendered


def test_table_without_primary_key_is_staged_without_dedup() -> None:
    rows = sql.staged_rows("__klx_batch", MEMBER_COLUMNS, (), None, "duckdb")
    assert "ROW_NUMBER" not in sql.render(rows, "duckdb")


def test_a_row_compared_with_a_subquery_selects_one_struct_where_the_dialect_compares_structs_only() -> None:
    # BigQuery refuses (a, b) IN (SELECT a, b ...): a subquery after IN returns one column. (a, b) is a STRUCT there.
    rows = exp.select("a", "b").from_("t")
    pair = exp.In(this=exp.Tuple(expressions=[sql.col("a"), sql.col("b")]), query=rows.subquery())
    one = exp.In(this=sql.col("a"), query=exp.select("a").from_("t").subquery())
    assert sql.render(pair, "bigquery") == "(`a`, `b`) IN (SELECT AS STRUCT a, b FROM t)"
    assert sql.render(one, "bigquery") == "`a` IN (SELECT a FROM t)"
    assert sql.render(pair, "postgres") == '("a", "b") IN (SELECT a, b FROM t)'
    assert "kind" not in rows.args or rows.args["kind"] is None  # rendering leaves the expression as it was


def test_a_row_compared_with_a_subquery_is_compared_column_by_column_where_the_dialect_compares_one_column() -> None:
    # Redshift: "a subquery ... limited to only one column in its select list" after IN. EXISTS with each
    # column equal to the outer row's, qualified by the table the statement reads (here aliased) or deletes from.
    rows = exp.select("a", "b").from_("u")
    select = exp.select("x").from_(sql.table("t", "s", alias="o")).where(
        exp.In(this=exp.Tuple(expressions=[sql.col("a"), sql.col("b")]), query=rows.subquery())
    )
    assert sql.render(select, "redshift") == (
        'SELECT x FROM "s"."t" AS "o" WHERE EXISTS(SELECT 1 FROM (SELECT a, b FROM u) AS "__klx_row" '
        'WHERE "__klx_row"."a" = "o"."a" AND "__klx_row"."b" = "o"."b")'
    )
    assert "EXISTS" not in select.sql()  # rendering leaves the expression as it was
    delete = sql.delete_superseded("t", ("a",), None, "l", schema="s")
    rendered = sql.render(delete, "redshift")
    assert rendered.count("EXISTS") == 1 and ') IN (' not in rendered  # only the one-column "a" IN (...) is left
    assert '"__klx_row"."a" = "s"."t"."a" AND "__klx_row"."l" = "s"."t"."l"' in rendered
    assert sql.render(exp.In(this=sql.col("a"), query=exp.select("a").from_("t").subquery()), "redshift") == '"a" IN (SELECT a FROM t)'


