"""Behaviour every SQL destination shares, run on DuckDB and on PostgreSQL: upsert, state, swaps, adoption."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pytest

from engine import sql
from engine.destinations.postgres import PostgresDestination
from engine.destinations.warehouse import SqlDestination
from engine.dialects import DIALECTS
from engine.errors import WarehouseError
from engine.rows import LOAD_COLUMNS, ColumnMap, RowBuilder
from engine.schema import ARROW_TYPES, Column, ColumnType, TableSpec
from tests.warehouses import Warehouse, open_warehouse, pg_schema, warehouse  # noqa: F401  (fixtures)

PROFILES = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated")


@pytest.fixture(autouse=True)
def gather_into_any_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Incremental loads into a table holding rows gather from the first row here (klx: from 250,000 on DuckDB)."""
    for destination in (SqlDestination, PostgresDestination):
        monkeypatch.setattr(destination, "gather_from", 0)
COLUMNS = [
    Column(name="id", type=ColumnType.TEXT),
    Column(name="updated", type=ColumnType.TIMESTAMP),
    Column(name="email", type=ColumnType.TEXT),
]


def ts(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=timezone.utc)


def batch(columns: list[Column], rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=pa.schema([(c.name, ARROW_TYPES[c.type]) for c in columns]))


def load(wh: Warehouse, data: list[dict[str, Any]], *, columns: list[Column] = COLUMNS, replace: bool = False,
         state: dict[str, Any] | None = None, table: TableSpec = PROFILES) -> None:
    run = wh.dest.begin("profiles", table, replace=replace)
    run.write(batch(columns, data), columns, state or {})
    run.finish(state or {})


def sending(dest: SqlDestination) -> list[tuple[str, str]]:
    """From now on, (kind, table) of every statement `dest` executes, in order."""
    sent: list[tuple[str, str]] = []
    execute = dest.execute
    dest.execute = lambda kind, table, *args, **kw: sent.append((kind, table)) or execute(kind, table, *args, **kw)  # type: ignore[method-assign]
    return sent


def profiles(wh: Warehouse, columns: str = "id, updated, email") -> list[dict[str, Any]]:
    return wh.query(f"select {columns} from kl_profiles order by id")


def test_upsert_keeps_the_greatest_cursor_per_key(warehouse: Warehouse) -> None:
    load(warehouse, [{"id": "a", "updated": ts(2), "email": "new"}, {"id": "b", "updated": ts(1), "email": "old"}])
    load(warehouse, [{"id": "a", "updated": ts(1), "email": "stale"}, {"id": "b", "updated": ts(3), "email": "newer"},
                     {"id": "b", "updated": ts(3), "email": "newest"}])
    assert profiles(warehouse) == [
        {"id": "a", "updated": ts(2), "email": "new"},
        {"id": "b", "updated": ts(3), "email": "newest"},
    ]


def test_state_is_saved_with_the_rows_and_read_back(warehouse: Warehouse) -> None:
    assert warehouse.dest.read_state("profiles") is None
    load(warehouse, [{"id": "a", "updated": ts(1), "email": None}], state={"cursor": {"": "2024-01-01T00:00:00+00:00"}})
    assert warehouse.dest.read_state("profiles") == {"cursor": {"": "2024-01-01T00:00:00+00:00"}}


def test_a_later_run_reads_information_schema_twice_and_drops_no_table_that_is_not_there(warehouse: Warehouse, tmp_path) -> None:
    # Each INFORMATION_SCHEMA read is a round trip, and a slow one on Snowflake.
    load(warehouse, [{"id": "a", "updated": ts(1), "email": "a"}], state={"n": 1})
    warehouse.dest.close()
    later = open_warehouse(warehouse.kind, tmp_path, warehouse.dest.schema)  # a later run: a new connection
    sent = sending(later.dest)
    assert later.dest.read_state("profiles") == {"n": 1} and later.dest.read_state("lists") is None
    load(later, [{"id": "b", "updated": ts(2), "email": "b"}], state={"n": 2})
    state_table = sql.state_table("kl_", later.dest.dialect)
    # The state table's once; at begin the table's, a killed full refresh's shadow's and a killed load's pending
    # table's in one read; none at finish.
    assert [table for kind, table in sent if kind == "READ COLUMNS"] == [state_table, "kl_profiles"]
    assert ("CREATE TABLE", state_table) not in sent  # known to exist: not created IF NOT EXISTS again
    assert not [table for kind, table in sent if kind == "DROP TABLE" and table.startswith("kl_profiles")]  # none was left
    assert later.dest.read_state("profiles") == {"n": 2}
    assert [r["id"] for r in later.query("select id from kl_profiles order by id")] == ["a", "b"]
    later.dest.close()


@pytest.mark.parametrize("replace, existing", [(False, False), (True, False), (True, True)], ids=["first sync", "full refresh", "full refresh over a table"])
def test_a_load_reads_its_tables_columns_once_though_its_batches_create_add_and_widen_them(
    warehouse: Warehouse, replace: bool, existing: bool
) -> None:
    # The DDL a batch runs says what the table has after it: the next batch need not read information_schema.
    if existing:
        load(warehouse, [{"id": "z", "updated": ts(1), "email": "z"}])
    sent = sending(warehouse.dest)
    scored = [*COLUMNS, Column(name="score", type=ColumnType.BIGINT)]
    as_text = [*COLUMNS, Column(name="score", type=ColumnType.TEXT)]
    run = warehouse.dest.begin("profiles", PROFILES, replace=replace)
    run.write(batch(COLUMNS, [{"id": "a", "updated": ts(1), "email": "a"}]), COLUMNS, {})
    run.write(batch(scored, [{"id": "b", "updated": ts(1), "email": "b", "score": 2}]), scored, {})  # ADD COLUMN score BIGINT
    run.write(batch(as_text, [{"id": "c", "updated": ts(1), "email": "c", "score": "high"}]), as_text, {})  # widened to text
    run.write(batch(scored, [{"id": "d", "updated": ts(1), "email": "d", "score": 4}]), scored, {})  # text holds it
    run.finish({})
    into = "kl_profiles__klx_shadow" if replace else "kl_profiles"
    reads = [table for kind, table in sent if kind == "READ COLUMNS" and table.startswith("kl_profiles")]
    assert reads == ["kl_profiles"]  # begin()'s (the table, a shadow and a pending table in one read)
    # (over a table, begin() makes the shadow from it; else the first batch creates the table)
    ddl = [(kind, table) for kind, table in sent if kind in ("CREATE TABLE", "ADD COLUMN", "WIDEN COLUMN") and table.startswith("kl_profiles")]
    assert ddl == [("CREATE TABLE", into), ("ADD COLUMN", into), ("WIDEN COLUMN", into)]
    found = warehouse.query("select id, score from kl_profiles order by id")
    expected = [("a", None), ("b", "2"), ("c", "high"), ("d", "4")] + ([("z", None)] if existing and not replace else [])
    assert [(r["id"], r["score"]) for r in found] == expected
    assert sql.column_type_of(warehouse.dest.columns_of("kl_profiles")["score"], warehouse.dest.dialect) is ColumnType.TEXT


def test_a_first_run_looks_for_the_state_table_once_and_reads_it_once_a_load_made_it(warehouse: Warehouse) -> None:
    # A first run reads every stream's state before any load creates the table: one round trip says it is missing.
    sent = sending(warehouse.dest)
    assert [warehouse.dest.read_state(stream) for stream in ("profiles", "events", "lists")] == [None, None, None]
    state_table = sql.state_table("kl_", warehouse.dest.dialect)
    assert sent == [("READ COLUMNS", state_table)]
    load(warehouse, [{"id": "a", "updated": ts(1), "email": "a"}], state={"n": 1})  # creates it
    assert warehouse.dest.read_state("profiles") == {"n": 1} and warehouse.dest.read_state("events") is None
    assert [table for kind, table in sent if kind == "READ COLUMNS" and table == state_table] == [state_table]


def test_a_later_run_reads_every_streams_state_in_one_query_and_again_only_a_state_it_wrote(warehouse: Warehouse, tmp_path) -> None:
    # A run reads each stream's state as it plans, and an incremental load into a table holding rows again as it
    # begins: on Snowflake each read was a round trip (18 of a later run's 118 statements, all ten streams).
    keyed = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated", loaded_at="uuid_ts")
    load(warehouse, [{"id": "a", "updated": ts(1), "email": "a"}], state={"n": 1})
    with warehouse.dest.transaction():
        warehouse.dest.save_state("events", {"n": 10})
        warehouse.dest.save_state("lists", {"n": 20})
    warehouse.dest.close()
    later = open_warehouse(warehouse.kind, tmp_path, warehouse.dest.schema)  # a later run: a new connection
    sent = sending(later.dest)
    reads = lambda: [table for kind, table in sent if kind == "READ STATE"]  # noqa: E731
    assert [later.dest.read_state(s) for s in ("profiles", "events", "lists", "flows")] == [{"n": 1}, {"n": 10}, {"n": 20}, None]
    assert len(reads()) == 1
    run = later.dest.begin("profiles", keyed, replace=False)  # reads the profiles state again: from that read
    assert len(reads()) == 1
    run.write(batch(LOADED, [{"id": "b", "updated": ts(2), "email": "b", "uuid_ts": ts(20)}]), LOADED, {"n": 2})
    assert later.dest.read_state("profiles") == {"n": 2} and len(reads()) == 2  # written since: read again, on its own
    run.finish({"n": 3})
    later.dest.delete_state("lists")
    assert [later.dest.read_state(s) for s in ("profiles", "events", "lists")] == [{"n": 3}, {"n": 10}, None]
    assert len(reads()) == 4  # profiles' and lists' again; events' as first read
    later.dest.close()


def test_finish_saves_no_state_the_last_batch_committed(warehouse: Warehouse) -> None:
    # An incremental run's last batch usually commits the state its finish() is given: one upsert, not two.
    load(warehouse, [{"id": "a", "updated": ts(1), "email": "a"}], state={"n": 1})
    kinds: list[str] = []
    with recording(warehouse, kinds):
        run = warehouse.dest.begin("profiles", PROFILES, replace=False)
        run.write(batch(COLUMNS, [{"id": "b", "updated": ts(2), "email": "b"}]), COLUMNS, {"n": 2})
        run.finish({"n": 2})
    assert kinds.count("STATE UPSERT") == 1 and warehouse.dest.read_state("profiles") == {"n": 2}
    # After a batch the warehouse refused, what the state row holds is not taken as known: finish() saves it.
    kinds.clear()
    bad = [*COLUMNS, Column(name="props", type=ColumnType.JSON)]
    with recording(warehouse, kinds):
        run = warehouse.dest.begin("profiles", PROFILES, replace=False)
        run.write(batch(COLUMNS, [{"id": "c", "updated": ts(3), "email": "c"}]), COLUMNS, {"n": 3})
        with pytest.raises(WarehouseError):
            run.write(batch(bad, [{"id": "d", "updated": ts(3), "email": "d", "props": "{not json"}]), bad, {"n": 3})
        run.finish({"n": 3})
    assert kinds.count("STATE UPSERT") == 2 and warehouse.dest.read_state("profiles") == {"n": 3}
    # Another state than the last batch's: saved.
    kinds.clear()
    with recording(warehouse, kinds):
        run = warehouse.dest.begin("profiles", PROFILES, replace=False)
        run.write(batch(COLUMNS, [{"id": "e", "updated": ts(4), "email": "e"}]), COLUMNS, {"n": 4})
        run.finish({"n": 5})
    assert kinds.count("STATE UPSERT") == 2 and warehouse.dest.read_state("profiles") == {"n": 5}


def test_prepare_reads_every_tables_columns_at_once_and_forgets_a_table_a_statement_touches(warehouse: Warehouse, tmp_path) -> None:
    # Each stream's begin() read its table, shadow and pending table's columns, and the first read_state the
    # state table's: 11 round trips of a later run of all ten streams on Snowflake, now one.
    load(warehouse, [{"id": "a", "updated": ts(1), "email": "a"}], state={"n": 1})
    warehouse.dest.close()
    later = open_warehouse(warehouse.kind, tmp_path, warehouse.dest.schema)
    sent = sending(later.dest)
    later.dest.prepare(["kl_profiles", "kl_lists"])
    assert later.dest.read_state("profiles") == {"n": 1}
    load(later, [{"id": "b", "updated": ts(2), "email": "b"}], state={"n": 2})
    assert [kind for kind, _ in sent].count("READ COLUMNS") == 1
    assert [r["id"] for r in profiles(later)] == ["a", "b"]
    # kl_lists was absent when prepared; a statement on it since means what was read may be stale: read again.
    later.dest.execute("CREATE TABLE", "kl_lists", sql.create_table("kl_lists", COLUMNS, later.dest.dialect, schema=later.dest.schema))
    assert list(later.dest.columns_of("kl_lists")) == ["id", "updated", "email"]
    assert [kind for kind, _ in sent].count("READ COLUMNS") == 2
    later.dest.close()


def test_prepare_counts_the_incremental_tables_rows_at_once_and_a_statement_since_makes_begin_count_again(
    warehouse: Warehouse, tmp_path
) -> None:
    # Each incremental load's begin() counted its table's rows: 8 of a later run's round trips on Snowflake.
    load(warehouse, [{"id": "a", "updated": ts(1), "email": "a"}, {"id": "b", "updated": ts(1), "email": "b"}], state={"n": 1})
    warehouse.dest.close()
    later = open_warehouse(warehouse.kind, tmp_path, warehouse.dest.schema)
    sent = sending(later.dest)
    counts = lambda: [kind for kind, _ in sent].count("COUNT ROWS")  # noqa: E731
    later.dest.prepare(["kl_profiles", "kl_lists"], ["kl_profiles", "kl_lists"])  # kl_lists does not exist yet
    assert counts() == 1
    run = later.dest.begin("profiles", PROFILES, replace=False)
    assert counts() == 1  # the prepared count
    written = run.write(batch(COLUMNS, [{"id": "b", "updated": ts(2), "email": "b2"}, {"id": "c", "updated": ts(2), "email": "c"}]), COLUMNS, {"n": 2})
    run.finish({"n": 2})
    assert (written.inserted, written.updated) == (1, 1)
    # A statement on the table after prepare(): what it counted may be stale, so begin() counts again.
    later.dest.prepare(["kl_profiles"], ["kl_profiles"])
    later.dest.execute("DELETE", "kl_profiles", sql.delete_all("kl_profiles", schema=later.dest.schema))
    before = counts()
    run = later.dest.begin("profiles", PROFILES, replace=False)
    assert counts() == before + 1
    written = run.write(batch(COLUMNS, [{"id": "d", "updated": ts(3), "email": "d"}]), COLUMNS, {"n": 3})
    run.finish({"n": 3})
    assert (written.inserted, written.updated) == (1, 0) and [r["id"] for r in profiles(later)] == ["d"]
    later.dest.close()


def test_failed_upsert_leaves_rows_and_state_as_they_were(warehouse: Warehouse) -> None:
    load(warehouse, [{"id": "a", "updated": ts(1), "email": "kept"}], state={"n": 1})
    run = warehouse.dest.begin("profiles", PROFILES, replace=False)
    with pytest.raises(ValueError):
        run.write(batch(COLUMNS, [{"id": "b", "updated": ts(2), "email": "x"}]).drop(["updated"]), COLUMNS, {"n": 2})
    run.abort()
    assert profiles(warehouse) == [{"id": "a", "updated": ts(1), "email": "kept"}]
    assert warehouse.dest.read_state("profiles") == {"n": 1}


def test_a_batch_given_no_state_leaves_the_saved_one_and_sends_no_state_upsert(warehouse: Warehouse) -> None:
    # A full refresh's batches: its rows become visible only at finish(), and the old state stays until then.
    load(warehouse, [{"id": "a", "updated": ts(1), "email": "a"}], state={"n": 1})
    kinds: list[str] = []
    with recording(warehouse, kinds):
        run = warehouse.dest.begin("profiles", PROFILES, replace=True)
        run.write(batch(COLUMNS, [{"id": "b", "updated": ts(2), "email": "b"}]), COLUMNS, None)
        run.write(batch(COLUMNS, [{"id": "c", "updated": ts(2), "email": "c"}]), COLUMNS, None)
        assert warehouse.dest.read_state("profiles") == {"n": 1} and "STATE UPSERT" not in kinds
        run.finish({"n": 2})
    assert kinds.count("STATE UPSERT") == 1 and warehouse.dest.read_state("profiles") == {"n": 2}
    assert [r["id"] for r in profiles(warehouse)] == ["b", "c"]
    # Killed before finish: the old state and rows stay.
    run = warehouse.dest.begin("profiles", PROFILES, replace=True)
    run.write(batch(COLUMNS, [{"id": "d", "updated": ts(3), "email": "d"}]), COLUMNS, None)
    run.abort()
    assert warehouse.dest.read_state("profiles") == {"n": 2} and [r["id"] for r in profiles(warehouse)] == ["b", "c"]


def test_full_refresh_swaps_in_only_the_new_rows(warehouse: Warehouse) -> None:
    load(warehouse, [{"id": "a", "updated": ts(1), "email": None}, {"id": "b", "updated": ts(1), "email": None}])
    load(warehouse, [{"id": "c", "updated": ts(2), "email": "c"}], replace=True)
    assert [r["id"] for r in profiles(warehouse)] == ["c"]
    assert "kl_profiles__klx_shadow" not in {r["table_name"] for r in warehouse.query(
        "select table_name from information_schema.tables where table_schema = current_schema()")}


def test_aborted_full_refresh_leaves_the_old_table(warehouse: Warehouse) -> None:
    load(warehouse, [{"id": "a", "updated": ts(1), "email": None}])
    run = warehouse.dest.begin("profiles", PROFILES, replace=True)
    run.write(batch(COLUMNS, [{"id": "z", "updated": ts(5), "email": None}]), COLUMNS, {})
    run.abort()
    assert [r["id"] for r in profiles(warehouse)] == ["a"]


@pytest.mark.parametrize("mode", ["incremental", "full_refresh"])
def test_leftover_shadow_of_a_killed_full_refresh_is_dropped_at_the_next_run(warehouse: Warehouse, mode: str) -> None:
    load(warehouse, [{"id": "a", "updated": ts(1), "email": None}])
    warehouse.run("create table kl_profiles__klx_shadow (id varchar, junk varchar)")
    load(warehouse, [{"id": "b", "updated": ts(2), "email": None}], replace=mode == "full_refresh")
    tables = {r["table_name"] for r in warehouse.query("select table_name from information_schema.tables where table_schema = current_schema()")}
    assert "kl_profiles" in tables and "kl_profiles__klx_shadow" not in tables  # this test's schema only: other workers load beside it
    assert "junk" not in warehouse.types("kl_profiles")


def test_columns_widen_bigint_to_double_to_text(warehouse: Warehouse) -> None:
    base = [*COLUMNS[:2]]
    load(warehouse, [{"id": "a", "updated": ts(1), "n": 1}], columns=[*base, Column(name="n", type=ColumnType.BIGINT)])
    load(warehouse, [{"id": "b", "updated": ts(1), "n": 1.5}], columns=[*base, Column(name="n", type=ColumnType.DOUBLE)])
    load(warehouse, [{"id": "c", "updated": ts(1), "n": "x"}], columns=[*base, Column(name="n", type=ColumnType.TEXT)])
    values = [r["n"] for r in warehouse.query("select n from kl_profiles order by id")]
    assert float(values[0]) == 1 and values[1:] == ["1.5", "x"]  # 1.0 reads '1' on PostgreSQL, '1.0' on DuckDB


def test_json_values_are_stored_as_json(warehouse: Warehouse) -> None:
    columns = [*COLUMNS[:2], Column(name="props", type=ColumnType.JSON)]
    load(warehouse, [{"id": "a", "updated": ts(1), "props": json.dumps({"k": [1, "two"]})}], columns=columns)
    (row,) = warehouse.query("select props from kl_profiles")
    stored = row["props"] if isinstance(row["props"], dict) else json.loads(row["props"])
    assert stored == {"k": [1, "two"]}


EDGE_TEXTS = ["", ",", '"', '""', "a,\"b\"\nc\r\nd", "\\N", "NULL", "é名😀\u2028", " padded ", "\\", "\t"]
EDGE_DOUBLES = [0.1, 1e-05, 1e20, -0.0, 5e-324, 1.7976931348623157e308, 2.0, -123456789.12345679, 1 / 3]
EDGE_INSTANTS = [datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
                 datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), ts(1)]


def test_every_value_of_a_batch_lands_exactly_empty_texts_apart_from_nulls(warehouse: Warehouse) -> None:
    # PostgreSQL's batches travel as CSV (an unquoted empty field is NULL, a quoted one an empty text).
    columns = [*COLUMNS, Column(name="score", type=ColumnType.DOUBLE), Column(name="n", type=ColumnType.BIGINT),
               Column(name="flag", type=ColumnType.BOOLEAN)]
    width = max(len(EDGE_TEXTS), len(EDGE_DOUBLES), len(EDGE_INSTANTS)) + 1
    rows = [
        {"id": f"k{i:02}", "updated": (EDGE_INSTANTS + [None])[i % (len(EDGE_INSTANTS) + 1)],
         "email": (EDGE_TEXTS + [None])[i % (len(EDGE_TEXTS) + 1)], "score": (EDGE_DOUBLES + [None])[i % (len(EDGE_DOUBLES) + 1)],
         "n": [2**63 - 1, -(2**63), 0, None][i % 4], "flag": [True, False, None][i % 3]}
        for i in range(width)
    ]
    load(warehouse, rows, columns=columns)
    landed = warehouse.query("select id, updated, email, score, n, flag from kl_profiles order by id")
    assert landed == rows
    assert [math.copysign(1, r["score"]) for r in landed if r["score"] == 0] == [-1.0]  # -0.0 keeps its sign


def test_hostile_field_names_round_trip_without_injection(warehouse: Warehouse) -> None:
    records = [{"id": "a", "ID": "upper", 'a"; DROP TABLE x; --': "evil", "prénom 名前": "unicode", "x" * 300: 1,
                "updated": "2024-01-01T00:00:00+00:00"}]
    names = ColumnMap(None, reserved=LOAD_COLUMNS)
    builder = RowBuilder(names, depth=2)
    for record in records:
        builder.add(record, ts(1))
    data, columns = builder.take({"uuid_ts": ts(1), "context_sources_job_run_id": "j", "context_sources_task_run_id": "t"})
    warehouse.run("create table x (keep int)")
    load(warehouse, data.to_pylist(), columns=columns, table=PROFILES)
    (row,) = warehouse.query("select * from kl_profiles")
    landed = {k: v for k, v in row.items() if k not in LOAD_COLUMNS}
    assert landed == {"id": "a", "id_2": "upper", "a_drop_table_x": "evil", "pr_nom": "unicode",
                      names.name(("x" * 300,)): 1, "updated": ts(1)}
    assert warehouse.query("select count(*) as n from x") == [{"n": 0}]  # the table named in the field still exists


# Adopting RudderStack tables


RUDDER_PROFILES = """create table kl_profiles (
    id varchar(512), updated timestamp, email text, score numeric, count numeric(18, 0),
    received_at timestamp, uuid_ts timestamp, legacy_column text
)"""


def test_rudderstack_table_is_adopted_with_its_types_and_extra_columns(warehouse: Warehouse) -> None:
    warehouse.run(RUDDER_PROFILES)
    warehouse.run("insert into kl_profiles (id, updated, email, legacy_column) values ('old', '2023-05-01 10:00:00', 'o', 'kept')")
    before = warehouse.types("kl_profiles")
    columns = [*COLUMNS, Column(name="score", type=ColumnType.DOUBLE), Column(name="count", type=ColumnType.BIGINT)]
    load(warehouse, [{"id": "a", "updated": ts(2, 13), "email": "e", "score": 1.25, "count": 7}], columns=columns)
    load(warehouse, [{"id": "a", "updated": ts(3, 9), "email": "e2", "score": 2.5, "count": 8}], columns=columns)
    assert warehouse.types("kl_profiles") == before
    rows = warehouse.query("select id, updated, email, score, count, legacy_column from kl_profiles order by id")
    # TIMESTAMP without time zone holds the UTC wall time, as RudderStack wrote it.
    assert rows == [
        {"id": "a", "updated": datetime(2024, 1, 3, 9), "email": "e2", "score": Decimal("2.5") if warehouse.kind == "postgres" else 2.5,
         "count": Decimal(8) if warehouse.kind == "postgres" else 8, "legacy_column": None},
        {"id": "old", "updated": datetime(2023, 5, 1, 10), "email": "o", "score": None, "count": None, "legacy_column": "kept"},
    ]


def test_an_adopted_row_read_at_the_cursor_it_holds_is_left_as_it_was(warehouse: Warehouse) -> None:
    # An equal cursor is the same version of the record: RudderStack's row keeps klx's columns null
    # (docs/migrating-from-rudderstack.md, "The first run into RudderStack's tables").
    warehouse.run("create table kl_profiles (id varchar, updated timestamp, attributes_email text)")
    warehouse.run("insert into kl_profiles values ('same', '2024-01-02 00:00:00', 'rs'), ('older', '2024-01-01 00:00:00', 'rs')")
    load(warehouse, [{"id": "same", "updated": ts(2), "email": "e"}, {"id": "older", "updated": ts(2), "email": "e"}])
    assert warehouse.query("select id, email, attributes_email from kl_profiles order by id") == [
        {"id": "older", "email": "e", "attributes_email": "rs"}, {"id": "same", "email": None, "attributes_email": "rs"},
    ]


def test_the_guides_cursor_renames_let_the_first_run_fill_every_adopted_row_it_reads(warehouse: Warehouse) -> None:
    guide = (Path(__file__).resolve().parent.parent / "docs" / "migrating-from-rudderstack.md").read_text()
    renames = re.findall(r"^alter table (\w+) rename column (\w+) to (\w+);$", guide, re.M)
    assert [table for table, _, _ in renames] == ["kl_rudder_events", "kl_rudder_campaigns", "kl_rudder_profiles"]
    for table, cursor, renamed in renames:
        warehouse.run(f"create table {table} (id varchar, {cursor} timestamp, attributes_name text)")
        warehouse.run(f"insert into {table} values ('read', '2024-01-02 00:00:00', 'rs'), ('not read', '2023-01-01 00:00:00', 'old')")
        warehouse.run(f"alter table {table} rename column {cursor} to {renamed}")
        columns = [Column(name="id", type=ColumnType.TEXT), Column(name=cursor, type=ColumnType.TIMESTAMP), Column(name="name", type=ColumnType.TEXT)]
        load(warehouse, [{"id": "read", cursor: ts(2), "name": "klx"}], columns=columns, table=TableSpec(name=table, primary_key=("id",), cursor=cursor))
        assert warehouse.query(f"select id, {cursor} as cursor, {renamed} as renamed, name, attributes_name from {table} order by id") == [
            {"id": "not read", "cursor": None, "renamed": datetime(2023, 1, 1), "name": None, "attributes_name": "old"},
            {"id": "read", "cursor": ts(2), "renamed": datetime(2024, 1, 2), "name": "klx", "attributes_name": "rs"},
        ], table


def test_full_refresh_of_an_adopted_table_keeps_its_columns_and_types(warehouse: Warehouse) -> None:
    warehouse.run(RUDDER_PROFILES)
    before = warehouse.types("kl_profiles")
    load(warehouse, [{"id": "a", "updated": ts(2), "email": "e"}], replace=True)
    assert warehouse.types("kl_profiles") == before
    assert profiles(warehouse) == [{"id": "a", "updated": datetime(2024, 1, 2), "email": "e"}]


def test_a_real_type_conflict_names_table_column_both_types_and_the_fix(warehouse: Warehouse) -> None:
    warehouse.run("create table kl_profiles (id varchar, updated date, email varchar)")
    with pytest.raises(WarehouseError) as raised:
        load(warehouse, [{"id": "a", "updated": ts(2), "email": "e"}])
    message = str(raised.value)
    assert "column 'updated' of table" in message and "kl_profiles has type DATE" in message
    assert "timestamp values" in message and "TIMESTAMPTZ" in message
    assert "ALTER TABLE" in raised.value.hint and '"updated"' in raised.value.hint


def test_a_type_conflict_in_a_full_refresh_names_the_real_table_and_its_fix_works(warehouse: Warehouse) -> None:
    warehouse.run("create table kl_profiles (id varchar, updated date, email varchar)")
    with pytest.raises(WarehouseError) as raised:
        load(warehouse, [{"id": "a", "updated": ts(2), "email": "e"}], replace=True)
    message, hint = str(raised.value), raised.value.hint
    assert f"of table {warehouse.dest.schema}.kl_profiles has type DATE" in message
    assert "shadow" not in message + hint
    for statement in hint.split("e.g. ", 1)[1].split(", or drop the column", 1)[0].split("; "):
        warehouse.run(statement)
    load(warehouse, [{"id": "a", "updated": ts(2), "email": "e"}], replace=True)
    assert profiles(warehouse) == [{"id": "a", "updated": ts(2), "email": "e"}]


def test_deleted_keys_leave_the_table_in_the_same_transaction(warehouse: Warehouse) -> None:
    load(warehouse, [{"id": "a", "updated": ts(1), "email": None}, {"id": "b", "updated": ts(1), "email": None}])
    run = warehouse.dest.begin("profiles", PROFILES, replace=False)
    gone = pa.table({"id": pa.array(["a"], pa.string())})
    run.write(batch(COLUMNS, [{"id": "c", "updated": ts(2), "email": None}]), COLUMNS, {"n": 2}, deletes=gone)
    run.finish({"n": 2})
    assert [r["id"] for r in profiles(warehouse)] == ["b", "c"]
    assert warehouse.dest.read_state("profiles") == {"n": 2}


def test_a_write_counts_inserted_and_updated_rows_and_added_columns(warehouse: Warehouse) -> None:
    first = warehouse.dest.begin("profiles", PROFILES, replace=False)
    counts = first.write(batch(COLUMNS, [{"id": "a", "updated": ts(1), "email": "x"}, {"id": "b", "updated": ts(1), "email": "y"}]), COLUMNS, {})
    first.finish({})
    assert (counts.inserted, counts.updated) == (2, 0)
    wider = [*COLUMNS, Column(name="phone", type=ColumnType.TEXT)]
    second = warehouse.dest.begin("profiles", PROFILES, replace=False)
    # a: newer cursor (updated); b: same cursor (left alone); c: new.
    rows = [{"id": "a", "updated": ts(2), "email": "x2", "phone": "1"}, {"id": "b", "updated": ts(1), "email": "y2", "phone": None},
            {"id": "c", "updated": ts(1), "email": "z", "phone": None}]
    counts = second.write(batch(wider, rows), wider, {})
    second.finish({})
    assert (counts.inserted, counts.updated, counts.columns_added) == (1, 1, ("phone",))


def test_run_history_rows_round_trip_newest_first(warehouse: Warehouse) -> None:
    def row(run_id: str, day: int, stream: str) -> tuple[Any, ...]:
        values = {c.name: None for c in sql.RUNS_COLUMNS}
        values.update(run_id=run_id, started_at=ts(day), ended_at=ts(day, 1), run_status="succeeded", stream=stream, mode="incremental",
                      status="done", records=10, rows=9, rejected=1, inserted=5, updated=4, columns_added='["phone"]', pages=2,
                      requests=3, retries=1, http_429=1, waited_seconds=1.5, seconds=2.5, error=None)
        return tuple(values[c.name] for c in sql.RUNS_COLUMNS)

    assert warehouse.dest.read_runs(10) == []
    warehouse.dest.append_run([row("r1", 1, "lists")])
    warehouse.dest.append_run([row("r2", 2, "lists"), row("r2", 2, "metrics")])
    found = warehouse.dest.read_runs(10)
    assert found[0]["run_id"] == "r2" and sorted((r["run_id"], r["stream"]) for r in found) == [("r1", "lists"), ("r2", "lists"), ("r2", "metrics")]
    assert [r["run_id"] for r in warehouse.dest.read_runs(1)] == ["r2", "r2"]  # the limit counts runs, not rows
    from engine.history import records_from_rows

    (newest, oldest) = records_from_rows(found)
    assert (oldest.run_id, oldest.started_at, oldest.ended_at, oldest.status) == ("r1", ts(1), ts(1, 1), "succeeded")
    (lists,) = oldest.streams
    assert (lists.inserted, lists.updated, lists.columns_added, lists.http_429, lists.waited_seconds, lists.rejected) == (5, 4, ("phone",), 1, 1.5, 1)
    assert sorted(s.stream for s in newest.streams) == ["lists", "metrics"]


@contextlib.contextmanager
def recording(wh: Warehouse, kinds: list[str] | None) -> Iterator[None]:
    """While inside, append the kind of every statement the destination executes to `kinds` (None: record nothing)."""
    if kinds is None:
        yield
        return
    execute = wh.dest.execute
    wh.dest.execute = lambda kind, *args, **kw: kinds.append(kind) or execute(kind, *args, **kw)  # type: ignore[method-assign]
    try:
        yield
    finally:
        del wh.dest.execute


# Full refresh: batches go into the shadow without being matched; keys repeated across batches are resolved
# at finish, as MERGEs in load order would have resolved them.

LOADED = [*COLUMNS, Column(name="uuid_ts", type=ColumnType.TIMESTAMP)]


def refresh(wh: Warehouse, batches: list[list[dict[str, Any]]], *, deferred: bool, kinds: list[str] | None = None,
            columns: list[Column] = LOADED, key: tuple[str, ...] = ("id",), replace: bool = True, first_hour: int = 0,
            finish: bool = True) -> tuple[list[dict[str, Any]], int, int]:
    """One load of `batches` (each row's uuid_ts: its batch's hour from `first_hour`), a full refresh unless
    replace=False; the rows it leaves and its summed counts. finish=False stops it as a kill would, after its last batch.

    deferred=False names no loaded_at: every batch is matched against the table as it is written (the MERGE path).
    """
    table = TableSpec(name="kl_profiles", primary_key=key, cursor="updated", loaded_at="uuid_ts" if deferred else None)
    with recording(wh, kinds):
        run = wh.dest.begin("profiles", table, replace=replace)
        inserted = updated = 0
        for n, rows in enumerate(batches, start=first_hour):
            counts = run.write(batch(columns, [{**row, "uuid_ts": ts(20, n)} for row in rows]), columns, {})
            inserted, updated = inserted + counts.inserted, updated + counts.updated
        finished = run.finish({}) if finish else None
    if finished is not None:
        inserted, updated = inserted + finished.inserted, updated + finished.updated
    return profiles(wh, "id, updated, email, uuid_ts"), inserted, updated


def row(key: str, day: int | None, email: str) -> dict[str, Any]:
    return {"id": key, "updated": None if day is None else ts(day), "email": email}


# Each case: batches in load order. The MERGE path keeps a key's greatest cursor, the earliest of equal ones,
# the latest when none has a cursor; a later null never replaces a cursor.
REPEATS = {
    "newer later": [[row("a", 1, "a0")], [row("a", 2, "a1")]],
    "stale later": [[row("a", 2, "a0")], [row("a", 1, "a1")]],
    "equal cursors": [[row("a", 2, "a0")], [row("a", 2, "a1")], [row("a", 2, "a2")]],
    "null then cursor then null": [[row("a", None, "a0")], [row("a", 1, "a1")], [row("a", None, "a2")]],
    "all null": [[row("a", None, "a0")], [row("a", None, "a1")], [row("a", None, "a2")]],
    "rising chain": [[row("a", 1, "a0")], [row("a", 2, "a1")], [row("a", 3, "a2")], [row("a", 2, "a3")]],
    "within and across batches": [
        [row("a", 1, "a0"), row("a", 3, "a0b"), row("b", None, "b0")],
        [row("b", None, "b1"), row("b", None, "b1b"), row("a", 3, "a1")],
        [row("c", 1, "c2"), row("a", 4, "a2"), row("b", 1, "b2")],
    ],
}


def random_batches(seed: int) -> list[list[dict[str, Any]]]:
    rnd = random.Random(seed)
    return [
        [row(rnd.choice("abcde"), rnd.choice([None, 1, 2, 3]), f"{n}.{i}") for i in range(rnd.randint(1, 6))]
        for n in range(rnd.randint(2, 6))
    ]


@pytest.mark.parametrize("batches", [*REPEATS.values(), *(random_batches(seed) for seed in range(12))],
                         ids=[*REPEATS, *(f"random-{seed}" for seed in range(12))])
def test_a_full_refresh_resolves_repeated_keys_at_finish_as_merges_in_load_order_would(warehouse: Warehouse, batches) -> None:
    matched = refresh(warehouse, batches, deferred=False)
    assert refresh(warehouse, batches, deferred=True) == matched


@pytest.mark.parametrize("case", ["within and across batches", "rising chain", "null then cursor then null"])
def test_rows_compared_column_by_column_resolve_repeats_and_gather_as_rows_compared_whole(
    warehouse: Warehouse, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = REPEATS[case]
    # Redshift refuses (a, b) IN (SELECT a, b ...) and gets EXISTS ... WHERE r.a = t.a AND r.b = t.b instead
    # (Dialect.row_in). Redshift cannot run here: the same statements, so written, run on this warehouse.
    whole = refresh(warehouse, batches, deferred=True), (existing(warehouse, BEFORE), later(warehouse, batches, gather=True))[1]
    dialect = warehouse.dest.dialect
    monkeypatch.setitem(DIALECTS, dialect, dataclasses.replace(DIALECTS[dialect], row_in="exists"))
    kinds: list[str] = []
    with recording(warehouse, kinds):
        by_column = refresh(warehouse, batches, deferred=True), (existing(warehouse, BEFORE), later(warehouse, batches, gather=True))[1]
    assert by_column == whole
    assert "DELETE SUPERSEDED" in kinds and "COUNT PENDING" in kinds  # the statements rewritten ran


def test_a_full_refresh_matches_no_batch_against_the_rows_before_it(warehouse: Warehouse) -> None:
    kinds: list[str] = []
    rows, inserted, updated = refresh(warehouse, [[row("a", 1, "a0"), row("b", 1, "b0")], [row("c", 1, "c1")], [row("d", 1, "d2")]],
                                      deferred=True, kinds=kinds)
    assert (len(rows), inserted, updated) == (4, 4, 0)
    assert [k for k in kinds if k in ("COUNT MATCHES", "COUNT UPDATES", "MERGE", "INSERT", "COUNT REPEATED KEYS", "DELETE SUPERSEDED")] == [
        "INSERT", "INSERT", "INSERT", "COUNT REPEATED KEYS"]  # one aggregate at finish, and no key repeats
    kinds.clear()
    refresh(warehouse, [[row("a", 1, "a0")], [row("a", 2, "a1"), row("a", 3, "a1b")]], deferred=True, kinds=kinds)
    assert [k for k in kinds if k in ("COUNT MATCHES", "COUNT UPDATES", "MERGE", "INSERT", "COUNT REPEATED KEYS", "DELETE SUPERSEDED")] == [
        "INSERT", "INSERT", "COUNT REPEATED KEYS", "DELETE SUPERSEDED"]
    # One batch (its INSERT keeps one row per key): no key can repeat, and nothing asks (a round trip on Snowflake).
    kinds.clear()
    rows, inserted, updated = refresh(warehouse, [[row("a", 1, "a0"), row("a", 2, "a1"), row("b", 1, "b0")]], deferred=True, kinds=kinds)
    assert (sorted((r["id"], r["email"]) for r in rows), inserted, updated) == ([("a", "a1"), ("b", "b0")], 2, 0)
    assert [k for k in kinds if k in ("COUNT MATCHES", "COUNT UPDATES", "MERGE", "INSERT", "COUNT REPEATED KEYS", "DELETE SUPERSEDED")] == ["INSERT"]


def test_a_full_refresh_whose_keys_stop_being_text_resolves_its_repeats_then_matches_every_batch(warehouse: Warehouse) -> None:
    # A batch whose key arrives as a timestamp: two staged values the batch's dedup tells apart may be one text
    # in the table, so from that batch on every batch is matched, once the keys repeated so far are resolved.
    instant = [Column(name="id", type=ColumnType.TIMESTAMP), *LOADED[1:]]
    batches = [
        (LOADED, [row("a", 1, "a0"), row("b", 1, "b0")]),
        (LOADED, [row("a", 2, "a1")]),
        (instant, [{"id": ts(5), "updated": ts(1), "email": "t2"}]),
        (instant, [{"id": ts(5), "updated": ts(2), "email": "t3"}, {"id": ts(6), "updated": ts(2), "email": "u3"}]),
    ]
    outcomes = []
    for deferred in (False, True):
        kinds: list[str] = []
        with recording(warehouse, kinds):
            table = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated", loaded_at="uuid_ts" if deferred else None)
            run = warehouse.dest.begin("profiles", table, replace=True)
            counts = [run.write(batch(columns, [{**r, "uuid_ts": ts(20, n)} for r in rows]), columns, {}) for n, (columns, rows) in enumerate(batches)]
            finished = run.finish({})
        assert finished is None  # resolved by the third batch, matched from then on
        outcomes.append((profiles(warehouse, "id, updated, email"), sum(c.inserted for c in counts), sum(c.updated for c in counts)))
        if deferred:
            assert kinds.count("DELETE SUPERSEDED") == 1 and "MERGE" in kinds
    assert outcomes[1] == outcomes[0]
    assert outcomes[0][1:] == (4, 2)


# An incremental load into an empty table (a first sync) defers too. Its rows are visible as batches commit,
# so until finish() its state says keys may repeat, and a load killed before then is resumed and resolved.

def first_sync(wh: Warehouse, batches: list[list[dict[str, Any]]], **kw: Any) -> tuple[list[dict[str, Any]], int, int]:
    wh.run("drop table if exists kl_profiles")
    wh.dest.delete_state("profiles")
    return refresh(wh, batches, replace=False, **kw)


@pytest.mark.parametrize("batches", [*REPEATS.values(), *(random_batches(seed) for seed in range(12))],
                         ids=[*REPEATS, *(f"random-{seed}" for seed in range(12))])
def test_a_first_incremental_sync_resolves_repeated_keys_at_finish_as_merges_in_load_order_would(warehouse: Warehouse, batches) -> None:
    matched = first_sync(warehouse, batches, deferred=False)
    assert first_sync(warehouse, batches, deferred=True) == matched
    assert "unresolved" not in warehouse.dest.read_state("profiles")


@pytest.mark.parametrize("batches", [*REPEATS.values(), *(random_batches(seed) for seed in range(12, 24))],
                         ids=[*REPEATS, *(f"random-{seed}" for seed in range(12, 24))])
def test_a_killed_first_sync_is_resumed_deferred_and_resolved_as_merges_in_load_order_would(warehouse: Warehouse, batches) -> None:
    matched = first_sync(warehouse, batches, deferred=False)
    cut = len(batches) // 2 + 1  # the kill lands after the batch at `cut` committed
    first_sync(warehouse, batches[:cut], deferred=True, finish=False)
    assert warehouse.dest.read_state("profiles")["unresolved"] == ts(20, cut - 1).isoformat()
    kinds: list[str] = []
    resumed = refresh(warehouse, batches[cut:], deferred=True, replace=False, first_hour=cut, kinds=kinds)
    assert not {"COUNT MATCHES", "COUNT UPDATES", "MERGE"} & set(kinds)
    assert "unresolved" not in warehouse.dest.read_state("profiles")
    assert resumed[0] == matched[0]


def test_a_first_incremental_sync_matches_no_batch_and_its_state_says_keys_may_repeat_until_it_ends(warehouse: Warehouse) -> None:
    kinds: list[str] = []
    table = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated", loaded_at="uuid_ts")
    with recording(warehouse, kinds):
        run = warehouse.dest.begin("profiles", table, replace=False)
        states = []
        for n, rows in enumerate([[row("a", 1, "a0"), row("b", 1, "b0")], [row("c", 1, "c1")], [row("a", 2, "a2")]]):
            counts = run.write(batch(LOADED, [{**r, "uuid_ts": ts(20, n)} for r in rows]), LOADED, {"cursor": {"": ts(n + 1).isoformat()}})
            assert (counts.inserted, counts.updated) == (len(rows), 0)
            states.append(warehouse.dest.read_state("profiles"))
        assert [s["unresolved"] for s in states] == [ts(20, 0).isoformat(), ts(20, 1).isoformat(), ts(20, 2).isoformat()]
        assert all(s["version"] == 2 and s["cursor"] == {"": ts(n + 1).isoformat()} for n, s in enumerate(states))
        assert len(profiles(warehouse)) == 4  # "a" twice, until finish
        finished = run.finish({"cursor": {"": ts(3).isoformat()}})
    assert (finished.inserted, finished.updated) == (-1, 1)
    assert warehouse.dest.read_state("profiles") == {"cursor": {"": ts(3).isoformat()}}
    assert [(r["id"], r["email"]) for r in profiles(warehouse)] == [("a", "a2"), ("b", "b0"), ("c", "c1")]
    assert [k for k in kinds if k in ("COUNT MATCHES", "COUNT UPDATES", "MERGE", "INSERT", "COUNT REPEATED KEYS", "DELETE SUPERSEDED")] == [
        "INSERT", "INSERT", "INSERT", "COUNT REPEATED KEYS", "DELETE SUPERSEDED"]
    # The next load finds rows in the table: it gathers its batches and merges them at finish, no key repeating.
    kinds.clear()
    rows, inserted, updated = refresh(warehouse, [[row("d", 1, "d0")], [row("b", 2, "b1")]], deferred=True, replace=False, first_hour=5, kinds=kinds)
    assert [k for k in kinds if k in ("COUNT MATCHES", "MERGE", "INSERT", "COUNT PENDING", "COUNT REPEATED KEYS")] == [
        "INSERT", "INSERT", "COUNT PENDING", "COUNT REPEATED KEYS", "MERGE"]
    assert (len(rows), inserted, updated) == (4, 1, 1)
    assert "unresolved" not in warehouse.dest.read_state("profiles")


def test_a_resumed_first_sync_whose_batches_are_not_later_resolves_first_then_matches(warehouse: Warehouse) -> None:
    # The clock stepped back between the killed load and its resumption: the resumed batches cannot be ordered
    # after the rows before them, so those are resolved at once and each batch from then on is matched.
    batches = [[row("a", 1, "a0"), row("b", 1, "b0")], [row("a", 2, "a1")], [row("a", 3, "a2"), row("b", 1, "b2")], [row("b", 2, "b3")]]
    matched = first_sync(warehouse, batches, deferred=False)
    first_sync(warehouse, batches[:2], deferred=True, first_hour=10, finish=False)
    kinds: list[str] = []
    resumed = refresh(warehouse, batches[2:], deferred=True, replace=False, first_hour=3, kinds=kinds)
    assert kinds.count("DELETE SUPERSEDED") == 1 and "MERGE" in kinds
    assert [(r["id"], r["updated"], r["email"]) for r in resumed[0]] == [(r["id"], r["updated"], r["email"]) for r in matched[0]]
    assert "unresolved" not in warehouse.dest.read_state("profiles")


# An incremental load into a table holding rows gathers its batches in <table>__klx_pending and merges them
# every `pending_rows` rows and at finish: the same rows and counts as matching each batch as it is written.

PHONE = [*LOADED, Column(name="phone", type=ColumnType.TEXT)]


def later(wh: Warehouse, batches: list[list[dict[str, Any]]], *, gather: bool, limit: int = 100_000, first_hour: int = 0,
          finish: bool = True, wider_from: int | None = None, deletes: dict[int, list[str]] | None = None) -> tuple[list[dict[str, Any]], int, int]:
    """One incremental load of `batches` into kl_profiles as it stands; from batch `wider_from` on, rows carry a
    phone column; `deletes` maps a batch to the keys it deletes. The rows left and the summed counts."""
    table = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated", loaded_at="uuid_ts" if gather else None)
    run = wh.dest.begin("profiles", table, replace=False)
    run.merge_every = limit
    inserted = updated = 0
    for n, rows in enumerate(batches, start=first_hour):
        columns = PHONE if wider_from is not None and n >= wider_from else LOADED
        data = [{**r, "uuid_ts": ts(20, n), **({"phone": f"+{n}"} if columns is PHONE else {})} for r in rows]
        gone = pa.table({"id": pa.array((deletes or {}).get(n, []), pa.string())})
        counts = run.write(batch(columns, data), columns, {}, gone if (deletes or {}).get(n) else None)
        inserted, updated = inserted + counts.inserted, updated + counts.updated
    finished = run.finish({}) if finish else None
    if finished is not None:
        inserted, updated = inserted + finished.inserted, updated + finished.updated
    return profiles(wh, "id, updated, email, uuid_ts"), inserted, updated


def existing(wh: Warehouse, rows: list[dict[str, Any]]) -> None:
    """kl_profiles holding `rows` (loaded at day 19), as a table klx loaded before or adopted."""
    wh.run("drop table if exists kl_profiles")
    wh.run("drop table if exists kl_profiles__klx_pending")
    wh.dest.delete_state("profiles")
    first_sync(wh, [rows], deferred=False)
    wh.run("update kl_profiles set uuid_ts = timestamp '2024-01-19 00:00:00'")


BEFORE = [row("a", 2, "a-old"), row("b", None, "b-old"), row("z", 1, "z-old")]


def random_existing(seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [row(key, rnd.choice([None, 1, 2, 3]), f"{key}-old") for key in rnd.sample("abcdexyz", rnd.randint(1, 6))]


CASES = [(BEFORE, b) for b in REPEATS.values()] + [(random_existing(seed), random_batches(seed)) for seed in range(30, 42)]
CASE_IDS = [*REPEATS, *(f"random-{seed}" for seed in range(30, 42))]


@pytest.mark.parametrize("limit", [1, 3, 100_000], ids=["merge every batch", "every 3 rows", "at finish"])
@pytest.mark.parametrize(("before", "batches"), CASES, ids=CASE_IDS)
def test_an_incremental_load_into_a_table_with_rows_gathers_and_merges_as_matching_each_batch_would(
    warehouse: Warehouse, before, batches, limit: int
) -> None:
    existing(warehouse, before)
    matched = later(warehouse, batches, gather=False)
    existing(warehouse, before)
    assert later(warehouse, batches, gather=True, limit=limit) == matched
    assert not warehouse.dest.columns_of("kl_profiles__klx_pending")


@pytest.mark.parametrize(("before", "batches"), CASES, ids=CASE_IDS)
def test_a_killed_incremental_loads_pending_rows_are_merged_by_the_next_load(warehouse: Warehouse, before, batches) -> None:
    existing(warehouse, before)
    matched = later(warehouse, batches, gather=False)
    existing(warehouse, before)
    cut = len(batches) // 2 + 1
    _, inserted, updated = later(warehouse, batches[:cut], gather=True, finish=False)  # killed after batch `cut` committed
    assert (inserted, updated) == (0, 0) and warehouse.dest.columns_of("kl_profiles__klx_pending")
    assert profiles(warehouse, "id, updated, email") == [{k: r[k] for k in ("id", "updated", "email")} for r in sorted(before, key=lambda r: r["id"])]
    rows, more_inserted, more_updated = later(warehouse, batches[cut:], gather=True, first_hour=cut)
    assert (rows, more_inserted, more_updated) == matched
    assert not warehouse.dest.columns_of("kl_profiles__klx_pending")


@pytest.mark.parametrize("deletes", [None, {1: ["a", "c"], 3: ["z"]}], ids=["new column", "new column and deletes"])
def test_gathered_rows_are_merged_before_a_batch_changes_the_table_or_deletes(warehouse: Warehouse, deletes) -> None:
    batches = [[row("a", 3, "a0"), row("c", 1, "c0")], [row("c", 2, "c1"), row("d", 1, "d1")], [row("d", 2, "d2"), row("e", 1, "e2")], [row("c", 3, "c3")]]
    outcomes = []
    for gather in (False, True):
        existing(warehouse, BEFORE)
        kinds: list[str] = []
        with recording(warehouse, kinds):
            outcome = later(warehouse, batches, gather=gather, wider_from=2, deletes=deletes)
        outcomes.append((outcome, warehouse.query("select id, phone from kl_profiles order by id")))
        if gather:  # merged before the phone column is added (or with the batch deleting, its rows first), and at finish
            assert kinds.count("COUNT PENDING") == 2 and "COUNT MATCHES" not in kinds
            assert kinds.index("COUNT PENDING") < kinds.index("ADD COLUMN")
    assert outcomes[1] == outcomes[0]
    kept = ["b", "c", "d", "e"] if deletes else ["a", "b", "c", "d", "e", "z"]  # a and z deleted; c deleted, then read again
    assert [r["id"] for r in outcomes[0][0][0]] == kept


def test_a_pending_table_whose_keys_stop_being_text_is_merged_then_each_batch_matched(warehouse: Warehouse) -> None:
    instant = [Column(name="id", type=ColumnType.TIMESTAMP), *LOADED[1:]]
    existing(warehouse, BEFORE)
    table = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated", loaded_at="uuid_ts")
    run = warehouse.dest.begin("profiles", table, replace=False)
    first = run.write(batch(LOADED, [{**row("a", 3, "a0"), "uuid_ts": ts(20, 0)}, {**row("q", 1, "q0"), "uuid_ts": ts(20, 0)}]), LOADED, {})
    assert (first.inserted, first.updated) == (0, 0)
    second = run.write(batch(instant, [{"id": ts(5), "updated": ts(1), "email": "t1", "uuid_ts": ts(20, 1)}]), instant, {})
    assert (second.inserted, second.updated) == (2, 1)  # q and the timestamp key new; a updated
    assert not warehouse.dest.columns_of("kl_profiles__klx_pending")
    assert run.finish({}) is None
    assert [r["email"] for r in profiles(warehouse)] == ["t1", "a0", "b-old", "q0", "z-old"]


def test_a_gathered_batch_not_later_than_the_one_before_is_matched_once_the_gathered_rows_are_merged(warehouse: Warehouse) -> None:
    # The pending rows are ordered by load time: a batch that cannot be placed after them (a clock stepping
    # back) is not gathered; the rows before it are merged and each batch from then on matched.
    table = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated", loaded_at="uuid_ts")
    existing(warehouse, BEFORE)
    run = warehouse.dest.begin("profiles", table, replace=False)
    kinds: list[str] = []
    with recording(warehouse, kinds):
        first = run.write(batch(LOADED, [{**row("a", 2, "a1"), "uuid_ts": ts(20, 5)}]), LOADED, {})
        second = run.write(batch(LOADED, [{**row("a", 2, "a2"), "uuid_ts": ts(20, 3)}, {**row("c", 1, "c2"), "uuid_ts": ts(20, 3)}]), LOADED, {})
        assert run.finish({}) is None
    assert [(c.inserted, c.updated) for c in (first, second)] == [(0, 0), (1, 0)]  # equal cursors: a stays a-old
    assert "COUNT PENDING" in kinds and "COUNT MATCHES" in kinds
    assert [(r["id"], r["email"]) for r in profiles(warehouse)] == [("a", "a-old"), ("b", "b-old"), ("c", "c2"), ("z", "z-old")]
    assert not warehouse.dest.columns_of("kl_profiles__klx_pending")


SCORED = [*LOADED, Column(name="score", type=ColumnType.BIGINT)]
TEXT_SCORED = [*LOADED, Column(name="score", type=ColumnType.TEXT)]


@pytest.mark.parametrize("held", ["'high'", "NULL"], ids=["adopted text column with values", "empty text column"])
def test_gathering_into_an_adopted_text_column_merges_only_at_finish_and_as_matching_would(warehouse: Warehouse, held: str) -> None:
    # A RudderStack table's text column that klx reads numbers into keeps its type: no DDL, so no merge per
    # batch. Numbers gathered but not merged count as its values: a later batch does not re-type it.
    batches = [(TEXT_SCORED, [{**row("a", 3, "a0"), "score": "7"}]), (SCORED, [{**row("c", 1, "c1"), "score": 9}]),
               (SCORED, [{**row("a", 4, "a2"), "score": 11}, {**row("d", 1, "d2"), "score": None}])]
    outcomes = []
    for gather in (False, True):
        existing(warehouse, BEFORE)
        warehouse.run("alter table kl_profiles add column score VARCHAR")
        warehouse.run(f"update kl_profiles set score = {held} where id = 'a'")
        kinds: list[str] = []
        with recording(warehouse, kinds):
            table = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated", loaded_at="uuid_ts" if gather else None)
            run = warehouse.dest.begin("profiles", table, replace=False)
            counts = [run.write(batch(columns, [{**r, "uuid_ts": ts(20, n)} for r in rows]), columns, {}) for n, (columns, rows) in enumerate(batches)]
            finished = run.finish({})
        if gather:
            assert kinds.count("COUNT PENDING") == 1 and not {"WIDEN COLUMN", "COUNT MATCHES"} & set(kinds)
            counts.append(finished)
        outcomes.append((warehouse.query("select id, email, score from kl_profiles order by id"),
                         sum(c.inserted for c in counts), sum(c.updated for c in counts), warehouse.types("kl_profiles")["score"]))
    assert outcomes[1] == outcomes[0]
    assert [r["score"] for r in outcomes[0][0]] == ["11", None, "9", None, None]


def test_an_aborted_gathering_load_merges_the_batches_it_committed_and_keeps_them_pending_if_it_cannot(warehouse: Warehouse, caplog) -> None:
    # Every committed batch of an incremental load is in the table after a failure, as before gathering.
    table = TableSpec(name="kl_profiles", primary_key=("id",), cursor="updated", loaded_at="uuid_ts")
    existing(warehouse, BEFORE)
    run = warehouse.dest.begin("profiles", table, replace=False)
    run.write(batch(LOADED, [{**row("a", 3, "a1"), "uuid_ts": ts(20, 0)}, {**row("c", 1, "c1"), "uuid_ts": ts(20, 0)}]), LOADED, {"n": 1})
    bad = [*LOADED, Column(name="props", type=ColumnType.JSON)]
    with pytest.raises(WarehouseError):
        run.write(batch(bad, [{**row("d", 1, "d2"), "uuid_ts": ts(20, 1), "props": "{not json"}]), bad, {"n": 2})
    run.abort()
    assert [(r["id"], r["email"]) for r in profiles(warehouse)] == [("a", "a1"), ("b", "b-old"), ("c", "c1"), ("z", "z-old")]
    assert not warehouse.dest.columns_of("kl_profiles__klx_pending") and warehouse.dest.read_state("profiles") == {"n": 1}
    # A merge that fails as well leaves the rows pending, with a warning; the next load merges them.
    run = warehouse.dest.begin("profiles", table, replace=False)
    run.write(batch(LOADED, [{**row("e", 1, "e3"), "uuid_ts": ts(20, 3)}]), LOADED, {"n": 3})
    warehouse.run("alter table kl_profiles rename column email to mail")
    run.abort()
    assert warehouse.dest.columns_of("kl_profiles__klx_pending") and "stay in kl_profiles__klx_pending" in caplog.text
    warehouse.run("alter table kl_profiles rename column mail to email")
    warehouse.dest.begin("profiles", table, replace=False).finish({"n": 4})
    assert [r["id"] for r in profiles(warehouse)] == ["a", "b", "c", "e", "z"]
    assert not warehouse.dest.columns_of("kl_profiles__klx_pending")


def test_an_incremental_load_matches_each_batch_until_the_table_holds_gather_from_rows(warehouse: Warehouse, monkeypatch) -> None:
    monkeypatch.setattr(warehouse.dest, "gather_from", 5)
    batches = [[row("c", 1, "c0")], [row("d", 1, "d1"), row("a", 3, "a1")], [row("e", 1, "e2")], [row("c", 2, "c3")]]
    existing(warehouse, BEFORE)
    matched = later(warehouse, batches, gather=False)
    existing(warehouse, BEFORE)
    kinds: list[str] = []
    with recording(warehouse, kinds):
        assert later(warehouse, batches, gather=True) == matched
    # 3 rows, then 4: matched; 5 after the second batch: the third and fourth are gathered, merged at finish
    assert [k for k in kinds if k in ("COUNT MATCHES", "COUNT PENDING")] == ["COUNT MATCHES", "COUNT MATCHES", "COUNT PENDING"]
