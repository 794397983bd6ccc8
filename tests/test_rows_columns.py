"""Records to rows, column by column: gaps between rows, saved column maps, Arrow types, JSON text."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from engine.rows import LOAD_COLUMNS, ColumnMap, RowBuilder, snake, widen
from engine.schema import ARROW_TYPES, ColumnType

AT = datetime(2026, 11, 1, tzinfo=timezone.utc)
LOAD = {"uuid_ts": AT, "context_sources_job_run_id": "job", "context_sources_task_run_id": "task"}


def build(records: list[dict], saved: list | None = None, depth: int = 3) -> tuple[dict, dict, ColumnMap]:
    columns = ColumnMap(saved, reserved=LOAD_COLUMNS)
    builder = RowBuilder(columns, depth=depth)
    for record in records:
        builder.add(record, AT)
    table, cols = builder.take(LOAD)
    return table.to_pydict(), {c.name: c.type for c in cols}, columns


@pytest.mark.parametrize(("name", "expected"), [("Xmas Sale", "xmas_sale"), ("X", "x"), ("_X_", "x"), ("tax", "tax")])
def test_snake_case_keeps_a_leading_or_trailing_x(name: str, expected: str) -> None:
    assert snake(name) == expected


def test_a_column_a_row_lacks_is_null_in_that_row() -> None:
    rows, _, _ = build([{"id": "a", "n": 1}, {"id": "b"}, {"id": "c"}, {"id": "d", "n": 2}, {"id": "e"}])
    assert rows["n"] == [1, None, None, 2, None]


def test_a_null_value_does_not_hide_the_values_after_it_in_the_record() -> None:
    rows, types, _ = build([{"id": "a", "gone": None, "n": 1, "inner": {"x": None, "y": "z"}}])
    assert (rows["n"], rows["inner_y"]) == ([1], ["z"])
    assert types["n"] is ColumnType.BIGINT
    assert "gone" not in rows and "inner_x" not in rows  # nothing but null: no column (test_rows.py)


def test_keys_that_are_not_strings_name_columns_by_their_text_and_the_last_same_named_key_wins() -> None:
    rows, _, _ = build([{"id": "a", 1: "one", "1": "uno", 2: "two"}, {"id": "b", 1: "eins"}])
    assert (rows["_1"], rows["_2"]) == (["uno", "eins"], ["two", None])


@pytest.mark.parametrize(("values", "kind", "stored"), [
    ([1.5, 2], ColumnType.DOUBLE, [1.5, 2.0]),
    ([2, 1.5, 3], ColumnType.DOUBLE, [2.0, 1.5, 3.0]),
    ([0.5, 2**53 + 1], ColumnType.DOUBLE, [0.5, float(2**53 + 1)]),  # the nearest double, as the warehouse stores it
    (["x", 1], ColumnType.TEXT, ["x", "1"]),
    ([True, 1], ColumnType.TEXT, ["true", "1"]),
    ([1, True], ColumnType.TEXT, ["1", "true"]),
    (["2024-06-11T13:02:45+00:00", "soon"], ColumnType.TEXT, ["2024-06-11T13:02:45+00:00", "soon"]),
    ([{"a": 1}, "x"], ColumnType.TEXT, ['{"a":1}', "x"]),
    ([["a"], 2.5], ColumnType.TEXT, ['["a"]', "2.5"]),
])
def test_a_column_widens_to_hold_every_value_in_any_order(values: list, kind: ColumnType, stored: list) -> None:
    rows, types, _ = build([{"id": str(i), "v": v} for i, v in enumerate(values)], depth=1)  # objects stay JSON
    assert (types["v"], rows["v"]) == (kind, stored)


def test_a_saved_column_keeps_its_type_when_a_batch_brings_only_nulls() -> None:
    _, types, columns = build([{"id": "a", "n": 5, "at": "2024-06-11T13:02:45+00:00"}])
    assert columns.to_state() == [[["id"], "id", "text"], [["n"], "n", "bigint"], [["at"], "at", "timestamp"]]
    rows, types, _ = build([{"id": "b", "n": None}], saved=columns.to_state())
    assert (types["n"], types["at"], rows["n"], rows["at"]) == (ColumnType.BIGINT, ColumnType.TIMESTAMP, [None], [None])


def test_a_saved_column_name_is_never_given_to_another_path() -> None:
    _, _, columns = build([{"id": "a", "a": {"b": 1}}])
    rows, _, after = build([{"id": "b", "a_b": 2}], saved=columns.to_state())
    assert (rows["a_b"], rows["a_b_2"]) == ([None], [2])
    assert after.name(("a_b",)) == "a_b_2" and after.name(("a", "b")) == "a_b"


def test_a_path_keeps_the_column_it_was_first_given() -> None:
    columns = ColumnMap(None, reserved=LOAD_COLUMNS)
    assert [columns.name(("Campaign Name",)), columns.name(("campaign_name",)), columns.name(("Campaign Name",))] == [
        "campaign_name", "campaign_name_2", "campaign_name"]


def test_every_column_has_its_types_arrow_type_even_when_all_null_or_empty() -> None:
    columns = ColumnMap(None, reserved=LOAD_COLUMNS)
    builder = RowBuilder(columns, depth=3, declared=["nothing"])  # a declared column has one while it is all null
    builder.add({"id": "a", "nothing": None, "at": "2024-06-11T13:02:45+00:00", "n": 1, "x": 1.5, "b": False, "j": [1]}, AT)
    for load in ({**LOAD, "context_sources_job_run_id": None}, LOAD):  # then an empty batch
        table, cols = builder.take(load)
        assert [(f.name, f.type) for f in table.schema] == [(c.name, ARROW_TYPES[c.type]) for c in cols]
        assert [c.type for c in cols[len(LOAD_COLUMNS):]] == [
            ColumnType.TEXT, ColumnType.TEXT, ColumnType.TIMESTAMP, ColumnType.BIGINT, ColumnType.DOUBLE, ColumnType.BOOLEAN, ColumnType.JSON]
    assert table.num_rows == 0


def test_a_record_added_without_its_size_adds_no_bytes() -> None:
    builder = RowBuilder(ColumnMap(None, reserved=LOAD_COLUMNS), depth=3)
    builder.add({"id": "a"}, AT)
    builder.add({"id": "b"}, AT, 10)
    assert (len(builder), builder.nbytes) == (2, 10)


def test_json_text_keeps_non_ascii_characters() -> None:
    rows, types, _ = build([{"id": "a", "tags": ["Zoë", "日本"], "t": "x"}, {"id": "b", "t": {"name": "Zoë"}}], depth=1)
    assert (types["tags"], rows["tags"]) == (ColumnType.JSON, ['["Zoë","日本"]', None])
    assert rows["t"] == ["x", '{"name":"Zoë"}']


def test_a_deep_value_is_the_same_json_text_a_shallow_one_would_be() -> None:
    leaf = {"é": "ü", "n": [1, 2.5, None, True, {}, [], "ß"], "e": {}}
    deep: dict = leaf
    for _ in range(3000):
        deep = {"k": deep, "v": "ß", "w": [1, {"z": None}]}
    rows, _, _ = build([{"id": "a", "deep": deep}], depth=1)
    level = ',"v":"ß","w":[1,{"z":null}]}'
    assert rows["deep"] == ['{"k":' * 3000 + json.dumps(leaf, separators=(",", ":"), ensure_ascii=False) + level * 3000]


def test_widening_a_type_with_itself_or_with_nothing_keeps_it() -> None:
    for kind in ColumnType:
        assert widen(kind, kind) is kind and widen(kind, None) is kind and widen(None, kind) is kind
    assert widen(None, None) is None
