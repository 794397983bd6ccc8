"""The DuckDB destination against a real database file."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from engine.destinations import DESTINATIONS, build_destination
from engine.destinations import duckdb as duckdb_destination
from engine.schema import ARROW_TYPES, Column, ColumnType, TableSpec
from engine.destinations.duckdb import MEMORY_SETTINGS, DuckDBDestination
from engine.errors import ConfigError, WarehouseError

PROFILES = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated")
COLUMNS = [
    Column(name="id", type=ColumnType.TEXT),
    Column(name="updated", type=ColumnType.TIMESTAMP),
    Column(name="email", type=ColumnType.TEXT),
]


def ts(day: int) -> datetime:
    return datetime(2024, 1, day, tzinfo=timezone.utc)


def batch(columns: list[Column], rows: list[dict[str, Any]]) -> pa.Table:
    """An Arrow batch typed the way the engine sends it (base.ARROW_TYPES)."""
    schema = pa.schema([(c.name, ARROW_TYPES[c.type]) for c in columns])
    return pa.Table.from_pylist(rows, schema=schema)


def profile(id: str, day: int | None, email: str | None = None) -> dict[str, Any]:
    return {"id": id, "updated": None if day is None else ts(day), "email": email}


def rows(dest: DuckDBDestination, table: str = "kl_profiles") -> list[dict[str, Any]]:
    """Every row of `table`, in a stable order."""
    found = dest.connection.table(table).to_arrow_table().to_pylist()
    return sorted(found, key=lambda row: [str(value) for value in row.values()])


def column_types(dest: DuckDBDestination, table: str = "kl_profiles") -> dict[str, str]:
    relation = dest.connection.table(table)
    return {name: str(dtype) for name, dtype in zip(relation.columns, relation.types)}


@pytest.fixture
def dest(tmp_path: Path) -> DuckDBDestination:
    destination = DuckDBDestination(path=str(tmp_path / "warehouse.duckdb"), table_prefix="kl_")
    yield destination
    destination.close()


def load(dest: DuckDBDestination, data: list[dict[str, Any]], state: dict[str, Any] | None = None,
         columns: list[Column] = COLUMNS, table: TableSpec = PROFILES, stream: str = "profiles") -> None:
    """One incremental load of one batch."""
    run = dest.begin(stream, table, replace=False)
    run.write(batch(columns, data), columns, state or {})
    run.finish(state or {})


# MERGE


def test_merge_keeps_the_row_with_the_greatest_cursor(dest: DuckDBDestination) -> None:
    load(dest, [profile("a", 2, "new@x"), profile("b", 1, "old@x")])
    load(dest, [profile("a", 1, "stale@x"), profile("b", 3, "newer@x")])
    assert rows(dest) == [profile("a", 2, "new@x"), profile("b", 3, "newer@x")]


def test_equal_cursor_leaves_the_row_untouched(dest: DuckDBDestination) -> None:
    load(dest, [profile("a", 2, "first@x")])
    load(dest, [profile("a", 2, "refetched@x")])
    assert rows(dest) == [profile("a", 2, "first@x")]


def test_null_cursor_in_the_table_is_overwritten(dest: DuckDBDestination) -> None:
    load(dest, [profile("a", None, "first@x")])
    load(dest, [profile("a", 1, "second@x")])
    assert rows(dest) == [profile("a", 1, "second@x")]


def test_duplicate_keys_in_one_batch_keep_greatest_cursor_then_later_row(dest: DuckDBDestination) -> None:
    load(dest, [
        profile("a", 3, "a-newest@x"), profile("a", 1, "a-old@x"),
        profile("b", 2, "b-earlier@x"), profile("b", 2, "b-later@x"),
    ])
    assert rows(dest) == [profile("a", 3, "a-newest@x"), profile("b", 2, "b-later@x")]


def test_without_cursor_the_newest_batch_wins(dest: DuckDBDestination) -> None:
    table = TableSpec(name="kl_lists", primary_key=("id",), cursor=None)
    columns = [Column(name="id", type=ColumnType.TEXT), Column(name="name", type=ColumnType.TEXT)]
    load(dest, [{"id": "l1", "name": "old"}], columns=columns, table=table)
    load(dest, [{"id": "l1", "name": "first"}, {"id": "l1", "name": "renamed"}], columns=columns, table=table)
    assert rows(dest, "kl_lists") == [{"id": "l1", "name": "renamed"}]


def test_batches_of_new_distinct_keys_are_inserted_and_the_others_merged(dest: DuckDBDestination, monkeypatch) -> None:
    kinds: list[str] = []
    execute = dest.execute
    monkeypatch.setattr(dest, "execute", lambda kind, *args, **kw: kinds.append(kind) or execute(kind, *args, **kw))

    def write(run: Any, data: list[dict[str, Any]]) -> tuple[int, int, list[str]]:
        kinds.clear()
        counts = run.write(batch(COLUMNS, data), COLUMNS, {})
        return counts.inserted, counts.updated, [k for k in kinds if k in ("INSERT", "MERGE", "COUNT UPDATES", "COUNT MATCHES")]

    run = dest.begin("profiles", PROFILES, replace=True)
    assert write(run, [profile("a", 1, "a1"), profile("b", 1, "b1")]) == (2, 0, ["INSERT"])  # empty shadow: no query asks
    assert write(run, [profile("c", 1, "c1"), profile("d", 1, "d1")]) == (2, 0, ["COUNT MATCHES", "INSERT"])
    # A key already loaded (one newer, one stale): the upsert decides, and counts what it changes.
    assert write(run, [profile("a", 2, "a2"), profile("b", None, "b-null"), profile("e", 1, "e1")]) == (1, 1, ["COUNT MATCHES", "MERGE"])
    # A key twice in one batch: deduplicated by the upsert, newest cursor first, then the later row.
    assert write(run, [profile("f", 1, "f-old"), profile("f", 1, "f-later"), profile("c", 3, "c3")]) == (1, 1, ["COUNT UPDATES", "MERGE"])
    run.finish({})
    assert rows(dest) == [
        profile("a", 2, "a2"), profile("b", 1, "b1"), profile("c", 3, "c3"), profile("d", 1, "d1"), profile("e", 1, "e1"),
        profile("f", 1, "f-later"),
    ]


def test_a_load_reads_its_tables_columns_and_row_count_again_only_after_changing_them(dest: DuckDBDestination, monkeypatch) -> None:
    # Nothing else writes the table during a load: what one batch read and counted serves the next, until a
    # batch deletes rows or fails. A batch that alters the table (ADD COLUMN) knows the columns it made.
    load(dest, [profile("z", 1, "z1")])
    kinds: list[str] = []
    execute = dest.execute
    monkeypatch.setattr(dest, "execute", lambda kind, *args, **kw: kinds.append(kind) or execute(kind, *args, **kw))
    wider = [*COLUMNS, Column(name="phone", type=ColumnType.TEXT)]

    def write(data: list[dict[str, Any]], columns: list[Column] = COLUMNS, deletes: pa.Table | None = None) -> tuple[int, int, list[str]]:
        kinds.clear()
        counts = run.write(batch(columns, data), columns, {}, deletes)
        return counts.inserted, counts.updated, [k for k in kinds if k in ("READ COLUMNS", "COUNT ROWS", "ADD COLUMN")]

    run = dest.begin("profiles", PROFILES, replace=False)
    # begin() reads them (with, in the same read, whether a killed load left a shadow or a pending table)
    assert [k for k in kinds if k in ("READ COLUMNS", "COUNT ROWS")] == ["READ COLUMNS", "COUNT ROWS"]
    assert write([profile("a", 1), profile("b", 1)]) == (2, 0, [])
    assert write([profile("c", 1)]) == (1, 0, [])
    assert write([{**profile("d", 1), "phone": "+1"}], wider) == (1, 0, ["ADD COLUMN"])
    # (the MERGE's new keys are counted)
    assert write([{**profile("e", 1), "phone": "+2"}, profile("a", 2, "a2") | {"phone": None}], wider) == (1, 1, ["COUNT ROWS"])
    gone = pa.table({"id": pa.array(["b"], pa.string())})
    assert write([{**profile("f", 1), "phone": None}], wider, gone) == (1, 0, [])
    assert write([{**profile("g", 1), "phone": None}], wider) == (1, 0, ["COUNT ROWS"])
    bad = [*wider, Column(name="properties", type=ColumnType.JSON)]
    with pytest.raises(WarehouseError):
        write([{**profile("h", 1), "phone": None, "properties": "{not json"}], bad)
    assert write([{**profile("h", 1), "phone": "+3"}], wider) == (1, 0, ["READ COLUMNS", "COUNT ROWS"])
    run.finish({})
    assert [(r["id"], r["phone"]) for r in rows(dest)] == [
        ("a", None), ("c", None), ("d", "+1"), ("e", "+2"), ("f", None), ("g", None), ("h", "+3"), ("z", None),
    ]


def test_a_batch_saves_the_state_only_when_it_differs_from_the_last_one_committed(dest: DuckDBDestination, monkeypatch) -> None:
    # A full refresh keeps the old state until finish(): its batches save it once. A failed batch's state may
    # not have been saved: the next batch saves its own whatever it is.
    saved: list[str] = []
    save = dest.save_state_text
    monkeypatch.setattr(dest, "save_state_text", lambda stream, text: saved.append(text) or save(stream, text))
    full = dest.begin("profiles", PROFILES, replace=True)
    for n in range(3):
        full.write(batch(COLUMNS, [profile(f"r{n}", 1)]), COLUMNS, {"cursor": "old"})
    full.finish({"cursor": "new"})
    assert saved == ['{"cursor": "old"}', '{"cursor": "new"}']
    assert saved_row(dest) == '{"cursor": "new"}'

    saved.clear()
    run = dest.begin("profiles", PROFILES, replace=False)
    run.write(batch(COLUMNS, [profile("a", 2)]), COLUMNS, {"cursor": "a"})
    run.write(batch(COLUMNS, [profile("b", 2)]), COLUMNS, {"cursor": "a"})
    bad = [*COLUMNS, Column(name="properties", type=ColumnType.JSON)]
    with pytest.raises(WarehouseError):
        run.write(batch(bad, [{**profile("c", 2), "properties": "{not json"}]), bad, {"cursor": "c"})
    run.write(batch(COLUMNS, [profile("d", 2)]), COLUMNS, {"cursor": "a"})
    assert saved == ['{"cursor": "a"}', '{"cursor": "a"}']  # the failed batch stopped before its state; the next saves again
    assert saved_row(dest) == '{"cursor": "a"}'
    run.finish({"cursor": "d"})


def saved_row(dest: DuckDBDestination) -> str:
    [(text,)] = dest.connection.execute("SELECT state FROM kl_klx_state WHERE stream = 'profiles'").fetchall()
    return text


def test_a_timestamp_key_met_again_is_upserted(dest: DuckDBDestination) -> None:
    # Only text or integer keys take the INSERT path (the dedup sees staged values, the upsert cast ones).
    table = TableSpec(name="kl_days", primary_key=("day",), cursor=None)
    columns = [Column(name="day", type=ColumnType.TIMESTAMP), Column(name="n", type=ColumnType.BIGINT)]
    load(dest, [{"day": ts(1), "n": 1}], columns=columns, table=table)
    load(dest, [{"day": ts(1), "n": 2}, {"day": ts(2), "n": 3}], columns=columns, table=table)
    assert rows(dest, "kl_days") == [{"day": ts(1), "n": 2}, {"day": ts(2), "n": 3}]


def test_composite_primary_key_keeps_one_row_per_pair(dest: DuckDBDestination) -> None:
    table = TableSpec(name="kl_segment_members", primary_key=("segment_id", "id"), cursor="joined")
    columns = [Column(name="segment_id", type=ColumnType.TEXT), Column(name="id", type=ColumnType.TEXT),
               Column(name="joined", type=ColumnType.TIMESTAMP)]
    load(dest, [{"segment_id": "s1", "id": "p1", "joined": ts(1)}, {"segment_id": "s2", "id": "p1", "joined": ts(1)}],
         columns=columns, table=table)
    load(dest, [{"segment_id": "s1", "id": "p1", "joined": ts(2)}, {"segment_id": "s1", "id": "p2", "joined": ts(2)}],
         columns=columns, table=table)
    assert rows(dest, "kl_segment_members") == [
        {"segment_id": "s1", "id": "p1", "joined": ts(2)},
        {"segment_id": "s1", "id": "p2", "joined": ts(2)},
        {"segment_id": "s2", "id": "p1", "joined": ts(1)},
    ]


def test_table_without_primary_key_appends(dest: DuckDBDestination) -> None:
    table = TableSpec(name="kl_log", primary_key=(), cursor=None)
    columns = [Column(name="line", type=ColumnType.TEXT)]
    load(dest, [{"line": "a"}], columns=columns, table=table)
    load(dest, [{"line": "a"}], columns=columns, table=table)
    assert rows(dest, "kl_log") == [{"line": "a"}, {"line": "a"}]


# Schema evolution


def test_new_column_in_a_later_batch_is_null_for_earlier_rows(dest: DuckDBDestination) -> None:
    load(dest, [profile("a", 1, "a@x")])
    phone = [*COLUMNS, Column(name="phone", type=ColumnType.TEXT)]
    load(dest, [{**profile("b", 1, "b@x"), "phone": "+1"}], columns=phone)
    assert rows(dest) == [{**profile("a", 1, "a@x"), "phone": None}, {**profile("b", 1, "b@x"), "phone": "+1"}]


def test_bigint_column_widens_to_double(dest: DuckDBDestination) -> None:
    as_int = [*COLUMNS, Column(name="score", type=ColumnType.BIGINT)]
    as_float = [*COLUMNS, Column(name="score", type=ColumnType.DOUBLE)]
    load(dest, [{**profile("a", 1), "score": 3}], columns=as_int)
    load(dest, [{**profile("b", 1), "score": 2.5}], columns=as_float)
    assert column_types(dest)["score"] == "DOUBLE"
    assert [r["score"] for r in rows(dest)] == [3.0, 2.5]


def test_text_column_that_held_only_nulls_becomes_bigint(dest: DuckDBDestination) -> None:
    as_text = [*COLUMNS, Column(name="count", type=ColumnType.TEXT)]
    as_int = [*COLUMNS, Column(name="count", type=ColumnType.BIGINT)]
    load(dest, [{**profile("a", 1), "count": None}], columns=as_text)
    load(dest, [{**profile("b", 1), "count": 7}], columns=as_int)
    assert column_types(dest)["count"] == "BIGINT"
    assert [r["count"] for r in rows(dest)] == [None, 7]


def test_text_column_with_values_stays_text_when_a_batch_says_bigint(dest: DuckDBDestination) -> None:
    as_text = [*COLUMNS, Column(name="count", type=ColumnType.TEXT)]
    as_int = [*COLUMNS, Column(name="count", type=ColumnType.BIGINT)]
    load(dest, [{**profile("a", 1), "count": "many"}], columns=as_text)
    load(dest, [{**profile("b", 1), "count": 7}], columns=as_int)
    assert column_types(dest)["count"] == "VARCHAR"
    assert [r["count"] for r in rows(dest)] == ["many", "7"]


def test_a_batch_of_nulls_never_changes_a_column_type(dest: DuckDBDestination) -> None:
    as_int = [*COLUMNS, Column(name="count", type=ColumnType.BIGINT)]
    as_text = [*COLUMNS, Column(name="count", type=ColumnType.TEXT)]
    load(dest, [{**profile("a", 1), "count": 7}], columns=as_int)
    load(dest, [{**profile("b", 1), "count": None}], columns=as_text)
    assert column_types(dest)["count"] == "BIGINT"


def test_json_column_round_trips(dest: DuckDBDestination) -> None:
    columns = [*COLUMNS, Column(name="properties", type=ColumnType.JSON)]
    value = {"nested": {"list": [1, "two", None]}, "ünïcode": True}
    load(dest, [{**profile("a", 1), "properties": json.dumps(value)}], columns=columns)
    assert column_types(dest)["properties"] == "JSON"
    assert json.loads(rows(dest)[0]["properties"]) == value


def test_odd_identifiers_are_quoted(dest: DuckDBDestination) -> None:
    table = TableSpec(name="kl_select from", primary_key=("select",), cursor="weird col")
    columns = [Column(name="select", type=ColumnType.TEXT), Column(name="weird col", type=ColumnType.BIGINT),
               Column(name='quote"d', type=ColumnType.TEXT)]
    load(dest, [{"select": "k", "weird col": 1, 'quote"d': "x"}], columns=columns, table=table)
    load(dest, [{"select": "k", "weird col": 2, 'quote"d': "y"}], columns=columns, table=table)
    assert rows(dest, "kl_select from") == [{"select": "k", "weird col": 2, 'quote"d': "y"}]


# State


def test_read_state_is_none_before_anything_was_saved(dest: DuckDBDestination) -> None:
    assert dest.read_state("profiles") is None


def test_state_is_saved_with_each_batch(dest: DuckDBDestination) -> None:
    run = dest.begin("profiles", PROFILES, replace=False)
    run.write(batch(COLUMNS, [profile("a", 1)]), COLUMNS, {"bookmark": "2024-01-01"})
    assert dest.read_state("profiles") == {"bookmark": "2024-01-01"}
    assert dest.read_state("events") is None


def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "w.duckdb")
    first = DuckDBDestination(path=path, table_prefix="kl_")
    load(first, [profile("a", 1)], state={"bookmark": 1})
    first.close()
    again = DuckDBDestination(path=path, table_prefix="kl_")
    assert again.read_state("profiles") == {"bookmark": 1}
    again.close()


def test_failing_merge_leaves_rows_and_state_unchanged(dest: DuckDBDestination) -> None:
    columns = [*COLUMNS, Column(name="properties", type=ColumnType.JSON)]
    load(dest, [{**profile("a", 1), "properties": "{}"}], state={"bookmark": 1}, columns=columns)
    wider = [*columns, Column(name="phone", type=ColumnType.TEXT)]
    run = dest.begin("profiles", PROFILES, replace=False)
    broken = batch(wider, [{**profile("a", 2), "properties": "{not json", "phone": "+1"}])
    with pytest.raises(WarehouseError) as raised:
        run.write(broken, wider, {"bookmark": 2})
    assert "MERGE on table main.kl_profiles failed" in str(raised.value)
    assert isinstance(raised.value.__cause__, Exception)
    assert dest.read_state("profiles") == {"bookmark": 1}
    assert rows(dest) == [{**profile("a", 1), "properties": "{}"}]  # the ADD COLUMN was rolled back too


def test_two_prefixes_in_one_database_keep_separate_state(tmp_path: Path) -> None:
    path = str(tmp_path / "w.duckdb")
    rudder = DuckDBDestination(path=path, table_prefix="kl_rudder_")
    acme = DuckDBDestination(path=path, table_prefix="kl_acme_")
    load(rudder, [profile("a", 1)], state={"account": "rudder"},
         table=TableSpec(name="kl_rudder_profiles", primary_key=("id",), cursor="updated"))
    load(acme, [profile("a", 1)], state={"account": "acme"},
         table=TableSpec(name="kl_acme_profiles", primary_key=("id",), cursor="updated"))
    assert rudder.read_state("profiles") == {"account": "rudder"}
    assert acme.read_state("profiles") == {"account": "acme"}
    tables = {name for (name,) in rudder.connection.sql("SHOW TABLES").fetchall()}
    assert {"kl_rudder_klx_state", "kl_acme_klx_state"} <= tables
    rudder.close()
    acme.close()


def test_finish_without_batches_creates_no_table(dest: DuckDBDestination) -> None:
    run = dest.begin("profiles", PROFILES, replace=False)
    run.finish({"bookmark": None})
    assert dest.read_state("profiles") == {"bookmark": None}
    assert dest.connection.sql("SHOW TABLES").fetchall() == [("kl_klx_state",)]


def test_empty_batch_still_creates_the_table(dest: DuckDBDestination) -> None:
    run = dest.begin("profiles", PROFILES, replace=False)
    run.write(batch(COLUMNS, []), COLUMNS, {})
    run.finish({})
    assert rows(dest) == []
    assert list(column_types(dest)) == ["id", "updated", "email"]


# Replace loads


def replace(dest: DuckDBDestination, data: list[dict[str, Any]], columns: list[Column] = COLUMNS) -> None:
    run = dest.begin("profiles", PROFILES, replace=True)
    run.write(batch(columns, data), columns, {"run": "replace"})
    run.finish({"run": "done"})


def test_replace_drops_rows_absent_from_the_new_load(dest: DuckDBDestination) -> None:
    load(dest, [profile("a", 1), profile("b", 1)])
    replace(dest, [profile("b", 1, "b@x"), profile("c", 1)])
    assert rows(dest) == [profile("b", 1, "b@x"), profile("c", 1)]
    assert dest.read_state("profiles") == {"run": "done"}
    assert dest.connection.sql("SHOW TABLES").fetchall() == [("kl_klx_state",), ("kl_profiles",)]


def test_replace_into_a_new_table_creates_it(dest: DuckDBDestination) -> None:
    replace(dest, [profile("a", 1)])
    assert rows(dest) == [profile("a", 1)]


def test_replace_keeps_columns_the_new_load_lacks(dest: DuckDBDestination) -> None:
    phone = [*COLUMNS, Column(name="phone", type=ColumnType.TEXT)]
    load(dest, [{**profile("a", 1), "phone": "+1"}], columns=phone)
    replace(dest, [profile("b", 1)])
    assert rows(dest) == [{**profile("b", 1), "phone": None}]


def test_replace_with_no_rows_empties_the_table(dest: DuckDBDestination) -> None:
    load(dest, [profile("a", 1)])
    run = dest.begin("profiles", PROFILES, replace=True)
    run.finish({})
    assert rows(dest) == []


def test_aborted_replace_leaves_the_old_table_intact(dest: DuckDBDestination) -> None:
    load(dest, [profile("a", 1)], state={"bookmark": 1})
    run = dest.begin("profiles", PROFILES, replace=True)
    run.write(batch(COLUMNS, [profile("b", 1)]), COLUMNS, {"bookmark": 2})
    run.abort()
    assert rows(dest) == [profile("a", 1)]
    assert dest.connection.sql("SHOW TABLES").fetchall() == [("kl_klx_state",), ("kl_profiles",)]


def test_crash_before_finish_leaves_the_old_table_intact(tmp_path: Path) -> None:
    path = str(tmp_path / "w.duckdb")
    first = DuckDBDestination(path=path, table_prefix="kl_")
    load(first, [profile("a", 1)])
    run = first.begin("profiles", PROFILES, replace=True)
    run.write(batch(COLUMNS, [profile("b", 1)]), COLUMNS, {})
    first.close()  # the process dies here
    again = DuckDBDestination(path=path, table_prefix="kl_")
    assert rows(again) == [profile("a", 1)]
    replace(again, [profile("c", 1)])  # the next run drops the stale shadow and starts over
    assert rows(again) == [profile("c", 1)]
    again.close()


def test_replace_load_widens_columns_of_the_target(dest: DuckDBDestination) -> None:
    as_text = [*COLUMNS, Column(name="count", type=ColumnType.TEXT)]
    as_int = [*COLUMNS, Column(name="count", type=ColumnType.BIGINT)]
    load(dest, [{**profile("a", 1), "count": "many"}], columns=as_text)
    replace(dest, [{**profile("b", 1), "count": 7}], columns=as_int)
    assert column_types(dest)["count"] == "BIGINT"
    assert rows(dest) == [{**profile("b", 1), "count": 7}]


# Config and registry


class Options(dict):
    """Options that know the line of each key, like the engine's YAML mapping."""

    def at(self, key: str) -> str:
        return f"config.yaml:{10 + list(self).index(key)}"


class Config:
    def __init__(self, options: dict[str, Any], type: str = "duckdb") -> None:
        self.type = type
        self.table_prefix = "kl_"
        self.options = Options(options)
        self.where = "config.yaml:9"


def test_a_prefix_and_schema_written_in_another_case_load_the_same_tables(tmp_path: Path) -> None:
    # DuckDB finds KL_profiles when asked for kl_profiles, but klx looked its tables up by exact case: after
    # table_prefix KL_ became kl_, it saw no table and its CREATE TABLE failed, "already exists".
    path = str(tmp_path / "w.duckdb")
    first = DuckDBDestination(path=path, schema="Klaviyo", table_prefix="KL_")
    load(first, [profile("a", 1)], state={"bookmark": 1}, table=TableSpec(name="KL_profiles", primary_key=("id",), cursor="updated"))
    first.close()
    again = DuckDBDestination(path=path, schema="klaviyo", table_prefix="kl_")
    assert again.read_state("profiles") == {"bookmark": 1}
    assert again.has_table("kl_profiles")
    load(again, [profile("a", 2, "a@x"), profile("b", 2)], state={"bookmark": 2})
    for name, row in (("kl_events", profile("c", 3)), ("KL_events", profile("d", 3))):  # full refreshes: a shadow swapped in
        run = again.begin("events", TableSpec(name=name, primary_key=("id",), cursor="updated"), replace=True)
        run.write(batch(COLUMNS, [row]), COLUMNS, {})
        run.finish({})
    assert rows(again, "Klaviyo.KL_profiles") == [profile("a", 2, "a@x"), profile("b", 2)]
    assert rows(again, "klaviyo.kl_events") == [profile("d", 3)]
    assert again.read_state("profiles") == {"bookmark": 2}
    tables = sorted(name.lower() for (name,) in again.connection.sql("SELECT table_name FROM information_schema.tables").fetchall())
    assert tables == ["kl_events", "kl_klx_state", "kl_profiles"]
    again.close()


def test_build_destination_opens_duckdb_in_the_given_schema(tmp_path: Path) -> None:
    dest = build_destination(Config({"path": str(tmp_path / "w.duckdb"), "schema": "klaviyo"}))
    load(dest, [profile("a", 1)])
    assert dest.connection.sql("SELECT count(*) FROM klaviyo.kl_profiles").fetchall() == [(1,)]
    dest.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (Config({"path": ":memory:"}, type="duckbd"),
         "config.yaml:9: destination.type: unknown 'duckbd'; known: duckdb, postgres, snowflake"),
        (Config({"path": ":memory:", "shema": "x"}),
         "config.yaml:11: destination.shema: unknown option for 'duckdb'; did you mean 'schema'?"),
        (Config({}), "config.yaml:9: destination.path: required for 'duckdb'"),
        (Config({"path": 3}), "config.yaml:10: destination.path: must be a string"),
        (Config({"path": ":memory:", "schema": ""}),
         "config.yaml:11: destination.schema: '' names no schema; give one, or leave the key out for main"),
    ],
)
def test_bad_destination_config_is_a_config_error(config: Config, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_destination(config)
    assert str(raised.value) == message


def test_unopenable_database_is_a_warehouse_error(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="cannot open DuckDB database"):
        DuckDBDestination(path=str(tmp_path / "missing-dir" / "w.duckdb"))


def test_duckdb_is_registered() -> None:
    assert DESTINATIONS["duckdb"] is DuckDBDestination


def test_a_duckdb_run_imports_no_other_driver_nor_parquet() -> None:
    # pyarrow.parquet (Snowflake's stage format) costs 4.7 MB and ~40 ms to import; a DuckDB run never writes Parquet.
    code = (
        "import sys; from engine.destinations import build_destination\n"
        "class C: type='duckdb'; table_prefix=''; options={'path': ':memory:'}; where='x'\n"
        "build_destination(C()).close()\n"
        "print(sorted(m for m in ('snowflake', 'psycopg', 'psycopg2', 'pyarrow.parquet') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "[]"


def test_building_and_loading_batches_never_imports_pyarrow_compute() -> None:
    # pyarrow.compute costs 9 MB and 40 ms to import, and nothing a run does needs it: its memory is bounded.
    code = (
        "import sys; from datetime import datetime, timezone\n"
        "from engine.rows import LOAD_COLUMNS, ColumnMap, RowBuilder\n"
        "from engine.destinations.duckdb import DuckDBDestination\n"
        "from engine.schema import TableSpec\n"
        "rows, now = RowBuilder(ColumnMap(None, reserved=LOAD_COLUMNS), 3), datetime.now(timezone.utc)\n"
        "for i in range(3): rows.add({'id': str(i), 'at': '2026-01-01T00:00:00Z', 'x': i / 2, 'n': i}, now)\n"
        "batch, columns = rows.take({'uuid_ts': now})\n"
        "dest = DuckDBDestination(path=':memory:')\n"
        "load = dest.begin('s', TableSpec(name='t', primary_key=('id',), cursor='at'), replace=True)\n"
        "load.write(batch, columns, {}); load.write(batch, columns, {}); load.finish({})\n"
        "print(dest.connection.execute('SELECT count(*) FROM t').fetchone()[0], 'pyarrow.compute' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    assert out.stdout.split() == ["3", "False"]


# Files other tools can read


def test_storage_version_writes_a_file_duckdb_1_2_can_open(tmp_path: Path) -> None:
    path = tmp_path / "old-readers.duckdb"
    dest = DuckDBDestination(path=str(path), table_prefix="kl_", storage_version="v1.2.0")
    load(dest, [profile("a", 1, "a@x")])
    dest.close()
    header = path.read_bytes()[:20]
    # The storage number duckdb 1.2 reads (duckdb 1.x refuses 2.x's, "version number 999").
    assert header[8:12] == b"DUCK" and int.from_bytes(header[12:20], "little") == 65
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("select tags['storage_version'] from duckdb_databases() where database_name = 'old-readers'").fetchall() == [("v1.2.0+",)]
        assert con.execute("select id, email from kl_profiles").fetchall() == [("a", "a@x")]


def test_default_storage_is_duckdb_2s_own(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    DuckDBDestination(path=str(path)).close()
    assert int.from_bytes(path.read_bytes()[12:20], "little") == 999


def test_unknown_storage_version_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="config.yaml:11: destination.storage_version: '1.2' is not a DuckDB version like v1.2.0"):
        build_destination(Config({"path": ":memory:", "storage_version": "1.2"}))


def test_a_file_held_by_another_process_names_that_process(tmp_path: Path) -> None:
    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; con = duckdb.connect({str(path)!r}); print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseError) as raised:
            DuckDBDestination(path=str(path))
        assert f"(PID {holder.pid})" in raised.value.hint
        assert raised.value.hint.startswith("another process holds the DuckDB file open: ")
        assert "folder" not in raised.value.hint
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_timestamptz_columns_fetch_into_python_with_klxs_own_dependencies(dest: DuckDBDestination) -> None:
    from importlib.metadata import requires

    assert any(r.startswith("pytz") for r in requires("klx") or [])  # DuckDB hands TIMESTAMPTZ over with pytz zones
    load(dest, [profile("a", 1)])
    [(updated,)] = dest.connection.execute("select updated from kl_profiles").fetchall()
    assert updated == ts(1) and updated.utcoffset().total_seconds() == 0


# Memory: DuckDB's own default limit is 80% of RAM, which it fills as tables grow


def test_memory_limit_defaults_to_a_fixed_bound_whatever_the_machine(tmp_path: Path) -> None:
    dest = build_destination(Config({"path": str(tmp_path / "m.duckdb")}))
    [(limit, threads)] = dest.connection.execute("select current_setting('memory_limit'), current_setting('threads')").fetchall()
    dest.close()
    assert limit == "122.0 MiB"  # 128MB in DuckDB's own units
    import duckdb

    with duckdb.connect() as plain:
        assert plain.execute("select current_setting('memory_limit')").fetchall() != [(limit,)]
        assert plain.execute("select current_setting('threads')").fetchall() == [(threads,)]  # DuckDB's default


@pytest.mark.parametrize("storage_version", [None, "v1.2.0"])
def test_memory_limit_and_threads_are_passed_to_the_connection(tmp_path: Path, storage_version: str | None) -> None:
    options = {"path": str(tmp_path / "m.duckdb"), "memory_limit": "1.5GB", "threads": 1}
    if storage_version:
        options["storage_version"] = storage_version
    dest = build_destination(Config(options))
    settings = dest.connection.execute("select current_setting('memory_limit'), current_setting('threads')").fetchall()
    load(dest, [profile("a", 1)])
    dest.close()
    assert settings == [("1.3 GiB", 1)]


@pytest.mark.parametrize("storage_version", [None, "v1.2.0"])
def test_duckdbs_allocator_hands_freed_memory_back_and_checkpoints_stay_small(tmp_path: Path, storage_version: str | None) -> None:
    options = {"path": str(tmp_path / "a.duckdb")} | ({"storage_version": storage_version} if storage_version else {})
    dest = build_destination(Config(options))
    names = ", ".join(f"current_setting('{name}')" for name in MEMORY_SETTINGS)
    [settings] = dest.connection.execute(f"select {names}").fetchall()
    load(dest, [profile("a", 1)])
    dest.close()
    flush, bulk, background, checkpoint, vacuum = settings
    assert background is True
    assert checkpoint == "8.0 MiB"
    assert vacuum == 0
    assert flush == "1MiB"
    assert bulk == "1.0 MiB"  # DuckDB's own rendering of the same size


def _load_three_row_groups(dest: DuckDBDestination) -> None:
    """300 profiles in three loads, each checkpointed: three row groups while nothing merges them."""
    for start in (0, 100, 200):
        load(dest, [profile(f"p{n}", 1 + n % 20, f"{n}@x") for n in range(start, start + 100)])
        dest.connection.execute("CHECKPOINT")


@pytest.mark.parametrize("storage_version", [None, "v1.2.0"])
def test_a_checkpoint_writes_what_is_new_and_leaves_the_row_groups_it_wrote_before(tmp_path: Path, storage_version: str | None) -> None:
    # Merging them rewrote up to 122,880 rows at a time: memory that grew with the table (bench/README.md).
    options = {"path": str(tmp_path / "v.duckdb")} | ({"storage_version": storage_version} if storage_version else {})
    dest = build_destination(Config(options))
    _load_three_row_groups(dest)
    [(groups, counted)] = dest.connection.execute(
        "SELECT count(DISTINCT row_group_id), sum(count) FILTER (WHERE column_path = '[0]') FROM pragma_storage_info('kl_profiles')"
    ).fetchall()
    kept = len(rows(dest))
    dest.close()
    assert (groups, counted, kept) == (3, 300, 300)


def _row_groups(dest: DuckDBDestination) -> int:
    [(groups,)] = dest.connection.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('kl_profiles')").fetchall()
    return groups


def test_once_a_load_deletes_checkpoints_merge_row_groups_again_so_deleted_rows_are_reclaimed(tmp_path: Path) -> None:
    # A deleted row stays marked in its row group until a merge rewrites the group: without merges a table that
    # loses rows on every run would grow with every run.
    dest = DuckDBDestination(path=str(tmp_path / "d.duckdb"), table_prefix="kl_")
    _load_three_row_groups(dest)
    groups_before = _row_groups(dest)
    run = dest.begin("profiles", PROFILES, replace=False)
    run.write(batch(COLUMNS, [profile("p300", 1)]), COLUMNS, {}, deletes=pa.table({"id": [f"p{n}" for n in range(0, 300, 3)]}))
    run.finish({})
    dest.connection.execute("CHECKPOINT")
    [(vacuum,)] = dest.connection.execute("SELECT current_setting('max_vacuum_tasks')").fetchall()
    groups_after, kept = _row_groups(dest), len(rows(dest))
    dest.close()
    assert (groups_before, kept, vacuum) == (3, 201, 100)  # 100: DuckDB's default
    assert groups_after == 1


def test_a_load_that_deletes_nothing_leaves_row_groups_unmerged(tmp_path: Path) -> None:
    dest = DuckDBDestination(path=str(tmp_path / "n.duckdb"), table_prefix="kl_")
    _load_three_row_groups(dest)
    run = dest.begin("profiles", PROFILES, replace=False)
    run.write(batch(COLUMNS, [profile("p300", 1)]), COLUMNS, {}, deletes=pa.table({"id": pa.array([], pa.string())}))
    run.finish({})
    dest.connection.execute("CHECKPOINT")
    [(vacuum,)] = dest.connection.execute("SELECT current_setting('max_vacuum_tasks')").fetchall()
    groups = _row_groups(dest)
    dest.close()
    assert (vacuum, groups) == (0, 4)


def _cached_mb(dest: DuckDBDestination) -> float:
    [(cached,)] = dest.connection.execute("SELECT sum(memory_usage_bytes) / 1e6 FROM duckdb_memory()").fetchall()
    return cached


def test_a_commit_leaves_duckdbs_cache_of_blocks_at_most_cache_after_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duckdb_destination, "CACHE_AFTER_COMMIT", "1MB")
    dest = DuckDBDestination(path=str(tmp_path / "c.duckdb"), table_prefix="kl_", memory_limit="256MB")
    load(dest, [profile(f"p{n}", 1 + n % 20, f"{secrets.token_hex(100)}@x") for n in range(20_000)])  # 4 MB that do not compress
    dest.connection.execute("CHECKPOINT")
    dest.connection.execute("SELECT * FROM kl_profiles").fetchall()  # reading the table caches its blocks
    cached_before = _cached_mb(dest)
    load(dest, [profile("one more", 1)])
    cached_after, kept = _cached_mb(dest), len(rows(dest))
    [(limit,)] = dest.connection.execute("SELECT current_setting('memory_limit')").fetchall()
    dest.close()
    assert cached_before > 3
    assert cached_after <= 1
    assert (kept, limit) == (20_001, "244.1 MiB")  # the statements keep the configured limit


def test_a_database_in_memory_keeps_its_tables_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duckdb_destination, "CACHE_AFTER_COMMIT", "1MB")
    monkeypatch.chdir(tmp_path)
    dest = DuckDBDestination(path=":memory:", table_prefix="kl_")
    load(dest, [profile(f"p{n}", 1 + n % 20, f"{secrets.token_hex(100)}@x") for n in range(20_000)])
    load(dest, [profile("one more", 1)])
    cached, kept = _cached_mb(dest), len(rows(dest))
    dest.close()
    assert (cached > 3, kept) == (True, 20_001)
    assert list(tmp_path.iterdir()) == []  # nothing spilled to ./.tmp


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"memory_limit": "lots"}, "destination.memory_limit: 'lots' is not a size like 256MB or 1GB"),
        ({"memory_limit": "80%"}, "destination.memory_limit: '80%' is not a size like 256MB or 1GB"),
        ({"memory_limit": 256}, "destination.memory_limit: must be a string"),
        ({"threads": 0}, "destination.threads: 0 is not a whole number of at least 1"),
        ({"threads": "2"}, "destination.threads: '2' is not a whole number of at least 1"),
        ({"threads": True}, "destination.threads: True is not a whole number of at least 1"),
    ],
)
def test_bad_memory_options_are_config_errors_naming_the_line(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=f"config.yaml:11: {re.escape(message)}"):
        build_destination(Config({"path": ":memory:", **options}))


def test_resolving_a_full_refreshs_repeated_keys_runs_under_a_lowered_memory_limit(dest: DuckDBDestination, monkeypatch) -> None:
    # The aggregate over every key of the table grows with it: DuckDB spills it rather than fill memory_limit.
    limits: dict[str, str] = {}
    execute = dest.execute

    def spy(kind: str, *args: Any, **kw: Any) -> Any:
        if kind in ("COUNT REPEATED KEYS", "COUNT SUPERSEDED", "DELETE SUPERSEDED", "INSERT"):
            [(limits[kind],)] = dest.connection.execute("select current_setting('memory_limit')").fetchall()
        return execute(kind, *args, **kw)

    monkeypatch.setattr(dest, "execute", spy)
    columns = [*COLUMNS, Column(name="uuid_ts", type=ColumnType.TIMESTAMP)]
    table = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated", loaded_at="uuid_ts")
    run = dest.begin("profiles", table, replace=True)
    for n, data in enumerate([[profile("a", 1, "a0")], [profile("a", 2, "a1")]]):
        run.write(batch(columns, [{**r, "uuid_ts": ts(20 + n)} for r in data]), columns, {})
    run.finish({})
    assert limits == {"INSERT": "122.0 MiB", "COUNT REPEATED KEYS": "30.5 MiB", "COUNT SUPERSEDED": "30.5 MiB", "DELETE SUPERSEDED": "30.5 MiB"}
    assert dest.connection.execute("select current_setting('memory_limit')").fetchall() == [("122.0 MiB",)]
    assert [(r["id"], r["email"]) for r in rows(dest)] == [("a", "a1")]
