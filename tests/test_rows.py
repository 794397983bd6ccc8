"""Records to rows: flattening, snake_case names that never collide, types that only widen."""

from __future__ import annotations

import copy
import json
import random
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from engine.schema import ColumnType
from engine import rows as rows_module
from engine.records import parse_datetime
from engine.rows import LOAD_COLUMNS, ColumnMap, RowBuilder, snake, value_type, widen

AT = datetime(2026, 11, 1, tzinfo=timezone.utc)
LOAD = {"uuid_ts": AT, "context_sources_job_run_id": "job", "context_sources_task_run_id": "task"}


def build(records: list[dict], saved: list | None = None) -> tuple[dict, dict, ColumnMap]:
    columns = ColumnMap(saved, reserved=LOAD_COLUMNS)
    builder = RowBuilder(columns, depth=3)
    for record in records:
        builder.add(record, AT)
    table, cols = builder.take(LOAD)
    return table.to_pydict(), {c.name: c.type for c in cols}, columns


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Campaign Name", "campaign_name"), ("$value", "value"), ("firstName", "first_name"), ("$event_id", "event_id"),
     ("3rd party", "_3rd_party"), ("$", "_"), ("opt-in", "opt_in")],
)
def test_snake_case_names(name: str, expected: str) -> None:
    assert snake(name) == expected


def test_nested_objects_flatten_to_three_levels_and_deeper_stay_json() -> None:
    record = {"id": "p1", "location": {"city": "Boston", "zip": "02110"},
              "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED", "suppression": []}}}}
    rows, types, _ = build([record])
    assert rows["location_city"] == ["Boston"]
    assert not {"location", "subscriptions", "subscriptions_email"} & set(rows)  # flattened objects are no columns
    assert json.loads(rows["subscriptions_email_marketing"][0]) == {"consent": "SUBSCRIBED", "suppression": []}
    assert types["subscriptions_email_marketing"] is ColumnType.JSON


def test_arrays_are_json() -> None:
    rows, types, _ = build([{"id": "c1", "tags_ids": ["a", "b"]}])
    assert (rows["tags_ids"], types["tags_ids"]) == (['["a","b"]'], ColumnType.JSON)


def test_colliding_names_get_a_suffix_that_is_kept_across_runs() -> None:
    first = {"id": "e1", "event_properties": {"value": 1, "$value": 2}}
    rows, _, columns = build([first])
    assert (rows["event_properties_value"], rows["event_properties_value_2"]) == ([1], [2])
    # Next run sees only "$value": it must land in the same column as before.
    rows, _, _ = build([{"id": "e2", "event_properties": {"$value": 5}}], saved=columns.to_state())
    assert rows["event_properties_value_2"] == [5]
    assert rows["event_properties_value"] == [None]


def test_a_field_named_like_a_load_column_does_not_overwrite_it() -> None:
    rows, _, _ = build([{"id": "x", "received_at": "yesterday"}])
    assert rows["received_at_2"] == ["yesterday"]
    assert rows["received_at"] == [AT]


@pytest.mark.parametrize("naive", [False, True])
def test_received_at_is_each_row_s_own_instant_and_the_load_values_are_the_batch_s(naive: bool) -> None:
    builder = RowBuilder(ColumnMap(None, reserved=LOAD_COLUMNS), depth=3)
    plus_two = timezone(timedelta(hours=2))
    received = [AT, AT, datetime(2026, 11, 1, 2, tzinfo=plus_two), datetime(2026, 11, 1, 2, tzinfo=plus_two), datetime(1, 1, 1, tzinfo=timezone.utc),
                datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), AT]
    if naive:
        received.append(datetime(2026, 11, 1, 5))
    for n, at in enumerate(received):
        builder.add({"id": str(n)}, at)
    table, columns = builder.take({"uuid_ts": datetime(2026, 11, 2, 1, tzinfo=plus_two), "context_sources_job_run_id": None})
    rows = table.to_pydict()
    assert rows["received_at"] == [at if at.tzinfo else at.replace(tzinfo=timezone.utc) for at in received]
    assert table.column("received_at").type == table.column("uuid_ts").type == pa.timestamp("us", tz="UTC")
    assert rows["uuid_ts"] == [datetime(2026, 11, 1, 23, tzinfo=timezone.utc)] * len(received)
    assert rows["context_sources_job_run_id"] == rows["context_sources_task_run_id"] == [None] * len(received)


def test_a_page_whose_rows_span_two_batches_gives_each_batch_its_received_at() -> None:
    # run.py hands every row of a page the same datetime object; a batch may be taken in the middle of a page.
    builder = RowBuilder(ColumnMap(None, reserved=LOAD_COLUMNS), depth=3)
    first, second = AT, AT + timedelta(seconds=1)
    for n, at in enumerate([first, first, first]):
        builder.add({"id": str(n)}, at)
    head = builder.take(LOAD)[0].column("received_at").to_pylist()
    for n, at in enumerate([first, first, second]):
        builder.add({"id": str(n)}, at)
    tail = builder.take(LOAD)[0].column("received_at").to_pylist()
    assert (head, tail) == ([first] * 3, [first, first, second])


def test_every_row_carries_the_load_columns() -> None:
    rows, types, _ = build([{"id": "a"}, {"id": "b"}])
    assert rows["context_sources_job_run_id"] == ["job", "job"]
    assert rows["context_sources_task_run_id"] == ["task", "task"]
    assert rows["uuid_ts"] == [AT, AT]
    assert {name: types[name] for name in LOAD_COLUMNS} == LOAD_COLUMNS


@pytest.mark.parametrize(
    ("value", "kind"),
    [(True, ColumnType.BOOLEAN), (3, ColumnType.BIGINT), (2.5, ColumnType.DOUBLE), ("x", ColumnType.TEXT),
     ("2024-06-11T13:02:45+00:00", ColumnType.TIMESTAMP), ("2024-11-14T23:18:34.827140+00:00", ColumnType.TIMESTAMP),
     ("2024-06-11", ColumnType.TEXT), ({"a": {}}, ColumnType.JSON), (None, None)],
)
def test_value_types(value: object, kind: ColumnType | None) -> None:
    assert value_type(value) is kind


def test_types_only_widen_and_do_not_depend_on_order() -> None:
    kinds = [None, ColumnType.BIGINT, ColumnType.DOUBLE, ColumnType.TEXT, ColumnType.BOOLEAN, ColumnType.TIMESTAMP, ColumnType.JSON]
    for a in kinds:
        for b in kinds:
            assert widen(a, b) == widen(b, a)
    assert widen(ColumnType.BIGINT, ColumnType.DOUBLE) is ColumnType.DOUBLE
    assert widen(ColumnType.BIGINT, ColumnType.BOOLEAN) is ColumnType.TEXT
    assert widen(None, ColumnType.TIMESTAMP) is ColumnType.TIMESTAMP


def test_mixed_values_in_one_column_are_converted_to_the_wider_type() -> None:
    rows, types, _ = build([{"id": "a", "n": 1}, {"id": "b", "n": 1.5}, {"id": "c", "t": "x"}, {"id": "d", "t": 7}])
    assert (types["n"], rows["n"]) == (ColumnType.DOUBLE, [1.0, 1.5, None, None])
    assert (types["t"], rows["t"]) == (ColumnType.TEXT, [None, None, "x", "7"])


@pytest.mark.parametrize("one_by_one", [False, True])
def test_a_field_gets_its_column_with_its_first_value_that_is_not_null(one_by_one: bool) -> None:
    # As RudderStack's loader: no column of nulls alone. one_by_one: RowBuilder._add's way (a key that is not a
    # string sends the batch there), else _settle's.
    odd = {1: "x"} if one_by_one else {}
    _, types, columns = build([{"id": "a", "phone_number": None, **odd}])
    assert "phone_number" not in types and ("phone_number",) not in columns.columns
    rows, types, columns = build([{"id": "b", "phone_number": None, **odd}, {"id": "c", "image": "i.png", "phone_number": 5}],
                                 saved=columns.to_state())
    assert (types["phone_number"], rows["phone_number"]) == (ColumnType.BIGINT, [None, 5])
    assert list(types)[-2:] == ["image", "phone_number"]  # named in the order their first values came
    # null in some records and an object in others (campaigns' tracking_options on SMS and on email): only the
    # object's columns
    rows, types, _ = build([{"id": "s", "tracking": None, **odd}, {"id": "e", "tracking": {"utm": True}}, {"id": "p", "tracking": None}])
    assert "tracking" not in types and rows["tracking_utm"] == [None, True, None]


def test_a_declared_column_is_made_at_first_sight_even_when_null() -> None:
    builder = RowBuilder(ColumnMap(None, reserved=LOAD_COLUMNS), depth=3, declared=["from_email_0"])
    builder.add({"id": "a", "from_email_0": None, "gone": None}, AT)
    table, columns = builder.take(LOAD)
    assert [(c.name, c.type) for c in columns[len(LOAD_COLUMNS):]] == [("id", ColumnType.TEXT), ("from_email_0", ColumnType.TEXT)]
    assert table.column("from_email_0").to_pylist() == [None]


def test_timestamps_become_aware_utc_datetimes() -> None:
    rows, types, _ = build([{"id": "a", "updated": "2024-06-11T15:02:45+02:00"}])
    assert types["updated"] is ColumnType.TIMESTAMP
    assert rows["updated"] == [datetime(2024, 6, 11, 13, 2, 45, tzinfo=timezone.utc)]


def test_timestamp_columns_hold_the_instants_parse_datetime_reads_whatever_the_spelling() -> None:
    # Each value is the instant parse_datetime gives it, whatever the spelling (+05:60, which Python reads as 06:00, included).
    spellings = [
        "2026-02-19T01:28:26+00:00", "2026-02-19 01:28:26.5+05:30", "2026-02-19T01:28:26.123456Z", "2026-02-19T01:28:26-0800",
        "0001-01-01T00:00:00-01:00", "9999-12-31T23:59:59+01:00", "2024-02-29T23:59:59.000001+14:00", "2026-02-19T01:28:26.12+23:59",
        "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999-00:00",
    ]
    for values in (spellings, [*spellings, "2024-10-22 15:32:56+05:60"]):
        rows, types, _ = build([{"id": str(n), "at": value} for n, value in enumerate([*values, None])])
        assert types["at"] is ColumnType.TIMESTAMP
        assert rows["at"] == [*(parse_datetime(v) for v in values), None]


ODD_TIMESTAMPS = [
    "2024-06-11T13:02:45Z\n", "2024-06-11T13:02:45Z\n\n", " 2024-06-11T13:02:45Z", "2024-06-11T13:02:45", "2024-06-11T13:02:45.1234567Z",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:59:59+01:00", "0001-01-01T01:00:00+01:00",
    "2024-02-30T00:00:00Z", "2024-06-11T24:00:00Z", "2024-06-11T23:59:60Z", "2024-06-11T13:02:45+24:00", "2024-06-11T13:02:45+0530",
    "２０２４-０６-１１T１３:０２:４５Z", "2024-06-11T13:02:45.5-00:00", "2024-06-11t13:02:45Z", "2024-06-11T13:02:45z",
]


@pytest.mark.parametrize("value", ODD_TIMESTAMPS, ids=repr)
def test_a_text_is_a_timestamp_exactly_when_it_has_the_pattern_and_parse_datetime_reads_it(value: str) -> None:
    expected = parse_datetime(value) if rows_module._TIMESTAMP.match(value) else None
    assert value_type(value) is (ColumnType.TEXT if expected is None else ColumnType.TIMESTAMP)
    rows, types, _ = build([{"id": "a", "at": value}])
    assert rows["at"] == [value if expected is None else expected]


KLAVIYO_FORM = ["2026-02-04T22:20:02+00:00", "1970-01-01T00:00:00+00:00", "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00"]
ALMOST_KLAVIYO_FORM = [
    "2026-02-30T00:00:00+00:00", "0000-01-01T00:00:00+00:00", "2026-13-01T00:00:00+00:00", "2026-02-04T24:00:00+00:00",
    "2026-02-04 22:20:02+00:00", "2026-02-04T22:20:02+01:00", "2026-W05-3T22:20:02+00:00", "２０２６-02-04T22:20:02+00:00",
    "2026-02-04T22:20:02+00:00\n", "2026-02-04T22:20:0\n+00:00", "2026-02-04T22:20:02.5+00:00", "2026-02-04T22:20:02Z",
]


@pytest.mark.parametrize("seed", range(30))
def test_a_column_s_timestamps_are_read_at_once_as_one_by_one(seed: int) -> None:
    """timestamp_offsets (a column's texts told apart at once when all have Klaviyo's form) against
    timestamp_offset on each text, over columns of that form with nulls and other texts mixed in."""
    rng = random.Random(seed)
    pool = KLAVIYO_FORM + ALMOST_KLAVIYO_FORM + ODD_TIMESTAMPS
    for _ in range(20):
        values = [rng.choice(KLAVIYO_FORM) if rng.random() < 0.8 else None for _ in range(rng.randint(0, 12))]
        if rng.random() < 0.5:
            values.insert(rng.randint(0, len(values)), rng.choice(pool))
        assert rows_module.timestamp_offsets(values) == [None if v is None else rows_module.timestamp_offset(v) for v in values], values


def test_a_column_of_klaviyo_s_form_is_parsed_without_the_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_module, "timestamp_offset", lambda value: pytest.fail(f"{value!r} matched one by one"))
    offsets = rows_module.timestamp_offsets([*KLAVIYO_FORM, None])
    assert offsets[:2] == [timedelta(days=20488, seconds=80402), timedelta(0)] and offsets[-1] is None


@pytest.mark.parametrize(
    "later", ["not a time", 5, 2.5, True, ["x"], "2024-06-11"], ids=repr,
)
def test_timestamps_then_another_value_make_a_text_column_of_the_very_texts_read(later: object) -> None:
    texts = ["2024-06-11 15:02:45.5+0200", None, "2024-06-11T13:02:45Z", "2024-06-11T13:02:45.000000+00:00"]
    rows, types, _ = build([{"id": str(n), "at": v} for n, v in enumerate([*texts, later, texts[0]])])
    assert types["at"] is ColumnType.TEXT
    assert rows["at"] == [*texts, later if isinstance(later, str) else json.dumps(later), texts[0]]


def test_a_saved_timestamp_column_widened_by_a_later_batch_keeps_that_batch_s_texts() -> None:
    _, types, columns = build([{"id": "a", "at": "2024-06-11T13:02:45Z"}])
    assert types["at"] is ColumnType.TIMESTAMP
    rows, types, _ = build([{"id": "b", "at": "2024-06-12T13:02:45+00:00"}, {"id": "c"}, {"id": "d", "at": 7}],
                           saved=columns.to_state())
    assert (types["at"], rows["at"]) == (ColumnType.TEXT, ["2024-06-12T13:02:45+00:00", None, "7"])


def test_a_timestamp_column_widened_in_the_next_batch_of_one_builder_holds_that_batch_s_texts() -> None:
    builder = RowBuilder(ColumnMap(None, reserved=LOAD_COLUMNS), depth=3)
    for n, value in enumerate(["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"]):
        builder.add({"id": str(n), "at": value}, AT)
    builder.take(LOAD)
    for n, value in enumerate(["2024-03-03T00:00:00Z", "text"]):
        builder.add({"id": str(n), "at": value}, AT)
    table, columns = builder.take(LOAD)
    assert table.to_pydict()["at"] == ["2024-03-03T00:00:00Z", "text"]


def test_a_column_of_nulls_is_typed_by_its_first_value_whatever_comes_before() -> None:
    rows, types, _ = build([{"id": "a", "at": None}, {"id": "b"}, {"id": "c", "at": None}, {"id": "d", "at": "2024-06-11T13:02:45Z"}])
    assert (types["at"], rows["at"]) == (ColumnType.TIMESTAMP, [None, None, None, datetime(2024, 6, 11, 13, 2, 45, tzinfo=timezone.utc)])
    rows, types, _ = build([{"id": "a", "n": None}, {"id": "b", "n": 2**63}, {"id": "c", "n": None}, {"id": "d", "n": True}])
    assert (types["n"], rows["n"]) == (ColumnType.TEXT, [None, str(2**63), None, "true"])


def test_a_path_holding_an_object_in_some_records_and_a_value_in_others_fills_both_columns() -> None:
    records = [{"id": "a", "p": {"a": 1}}, {"id": "b", "p": "x"}, {"id": "c", "p": None}, {"id": "d", "p": {"a": 2}},
               {"id": "e", "p": "y"}, {"id": "f", "p": {"a": {"b": [1]}, "c": None}}, {"id": "g", "p": ["z"]}]
    rows, types, _ = build(records)
    assert (types["p_a"], rows["p_a"]) == (ColumnType.BIGINT, [1, None, None, 2, None, None, None])
    assert (types["p"], rows["p"]) == (ColumnType.TEXT, [None, "x", None, None, "y", None, '["z"]'])
    assert (types["p_a_b"], rows["p_a_b"]) == (ColumnType.JSON, [None] * 5 + ["[1]", None])
    assert "p_c" not in rows  # null wherever it came: no column


def test_a_timestamp_read_twice_in_one_record_keeps_the_last_text() -> None:
    # Keys 1 and "1" name one column; the second value replaces the first, its text too.
    records = [{"1": "2024-01-01T00:00:00Z"}, {1: "2024-02-02T00:00:00Z", "1": "2024-03-03T00:00:00Z"},
               {1: None, "1": "2024-04-04T00:00:00Z"}, {"1": "2024-05-05T00:00:00Z", 1: None}]
    rows, types, _ = build(records)
    assert types["_1"] is ColumnType.TIMESTAMP
    assert rows["_1"] == [parse_datetime(v) for v in ("2024-01-01T00:00:00Z", "2024-03-03T00:00:00Z", "2024-04-04T00:00:00Z")] + [None]
    rows, types, _ = build([*records, {"1": "later text"}])
    assert (types["_1"], rows["_1"]) == (
        ColumnType.TEXT, ["2024-01-01T00:00:00Z", "2024-03-03T00:00:00Z", "2024-04-04T00:00:00Z", None, "later text"])


def test_integers_keep_a_bigint_column_until_one_needs_more_than_64_bits() -> None:
    rows, types, _ = build([{"id": "a", "n": 2**63 - 1}, {"id": "b", "n": -(2**63)}, {"id": "c", "n": 0}])
    assert (types["n"], rows["n"]) == (ColumnType.BIGINT, [2**63 - 1, -(2**63), 0])
    rows, types, _ = build([{"id": "a", "n": 2**63 - 1}, {"id": "b", "n": 2**63}])
    assert (types["n"], rows["n"]) == (ColumnType.TEXT, [str(2**63 - 1), str(2**63)])
    rows, types, _ = build([{"id": "a", "n": 1}, {"id": "b", "n": True}])
    assert (types["n"], rows["n"]) == (ColumnType.TEXT, ["1", "true"])


def test_double_columns_hold_what_float_gives_each_value() -> None:
    values = [1, 2.5, -(2**53), 2**53 + 1, 0.1, -0.0, 1e308]  # 2**53 + 1: no double holds it, float() rounds it
    rows, types, _ = build([{"id": str(n), "x": v} for n, v in enumerate([*values, None])])
    assert types["x"] is ColumnType.DOUBLE
    assert rows["x"] == [*(float(v) for v in values), None]
    rows, _, _ = build([{"id": str(n), "x": v} for n, v in enumerate([1, 2.5, None])])
    assert rows["x"] == [1.0, 2.5, None]


def test_long_names_are_shortened_deterministically() -> None:
    key = "a_really_long_property_name_that_keeps_going_and_going_past_the_limit"
    rows, _, _ = build([{"id": "a", "properties": {key: 1}}])
    (name,) = [n for n in rows if n.startswith("properties_a_really")]
    assert len(name) <= 63
    rows2, _, _ = build([{"id": "a", "properties": {key: 1}}])
    assert name in rows2


def test_a_long_name_is_cut_to_63_characters_ending_in_a_hash_of_the_whole_name() -> None:
    columns = ColumnMap(None, reserved=LOAD_COLUMNS)
    key = "a_really_long_property_name_that_keeps_going_and_going_past_the_limit"
    # 54 characters of the name, "_", the first 8 hex digits of the SHA-1 of the whole name.
    assert columns.name(("properties", key)) == "properties_a_really_long_property_name_that_keeps_goin_3e5d21dc"
    assert columns.name(("properties", key + "_x")) == "properties_a_really_long_property_name_that_keeps_goin_9a44aff2"
    assert columns.name(("properties", "a" * 52)) == "properties_" + "a" * 52  # exactly 63: kept whole
    # A clash at the limit: the name is cut so that its suffix still fits.
    assert columns.name(("properties_" + "a" * 52,)) == "properties_" + "a" * 50 + "_2"
    assert all(len(name) <= 63 for name in columns.columns.values())


def test_integers_beyond_64_bits_are_exact_text() -> None:
    rows, types, _ = build([{"id": "a", "n": 2**63 - 1, "m": -(2**63)}, {"id": "b", "n": 2**63, "m": -(2**63) - 1}])
    assert (types["n"], rows["n"]) == (ColumnType.TEXT, ["9223372036854775807", "9223372036854775808"])
    assert (types["m"], rows["m"]) == (ColumnType.TEXT, ["-9223372036854775808", "-9223372036854775809"])


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_datetime_outside_what_utc_can_hold_is_text(value: str) -> None:
    rows, types, _ = build([{"id": "a", "at": value}])
    assert (types["at"], rows["at"]) == (ColumnType.TEXT, [value])


def test_a_value_nested_5000_deep_is_stored_as_its_json() -> None:
    deep: dict = {}
    inner = deep
    for _ in range(5000):
        inner["k"] = {}
        inner = inner["k"]
    inner["k"] = [1, "x", None]
    rows, types, _ = build([{"id": "a", "deep": {"a": {"b": deep}}}])
    assert types["deep_a_b"] is ColumnType.JSON
    (text,) = rows["deep_a_b"]
    assert text == '{"k":' * 5001 + '[1,"x",null]' + "}" * 5001


def test_a_batch_counts_the_response_bytes_its_rows_came_from_until_taken() -> None:
    builder = RowBuilder(ColumnMap(None, reserved=LOAD_COLUMNS), depth=3)
    builder.add({"id": "a"}, AT, 1200)
    builder.add({"id": "b"}, AT, 800)
    assert (len(builder), builder.nbytes) == (2, 2000)
    builder.take(LOAD)
    assert (len(builder), builder.nbytes) == (0, 0)


def test_json_text_is_what_json_dumps_writes_and_survives_a_too_deep_value() -> None:
    # dumps reuses one encoder: its text must be json.dumps' own, also for the values after a too-deep one.
    values = [[], {}, [1, 2.5, 1e16, 1e-7, float("nan"), None, True], {"a": {"b": [1, "é\n\u2028\x7f\"\\"]}, "1": 2},
              [[]] * 3, 10**30, ["a", "b"], [{"sku": "A-1", "price": 19.99, "tags": []}]]
    deep: list = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]
    for value in [*values, deep, *values]:
        expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False) if value is not deep else "[" * 5001 + "]" * 5001
        assert rows_module.dumps(value) == expected


class _Text(str):
    pass


FLAT_JSON = [["a", "b"], {"a": None, "b": True, "c": 1, "d": "x"}, {"l": ["a", 1, None, True], "e": []}, [True, False, None],
             [2**63 - 1, -(2**63), 2**64 - 1], ["é\n\u2028\x7f\"\\/😀", "\x00\x1f"], {"é\n\"": "key"}, [[], ["x"]]]
NOT_FLAT_JSON = [[2**64, "x"], [-(2**63) - 1], {1: "int key", "2": None}, {"a": "\ud800 alone"}, [_Text("x")], {"a": [_Text("y")]},
                 [[[1]]], {"a": [1.5]}, {"a": [1e-05]}, [[float("inf")]], [1.5, "x"], [1e-05, float("nan")], {"a": {"b": 1}}, [{"a": 1}], (1, "tuple")]


@pytest.mark.parametrize("value", FLAT_JSON + NOT_FLAT_JSON, ids=repr)
def test_json_text_of_flat_and_other_values_is_json_dumps_own(value: object) -> None:
    assert rows_module.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_flat_json_values_are_written_without_json_s_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the speed is for: lists and objects of strings, integers, booleans, nulls and lists of those go to orjson.
    monkeypatch.setattr(rows_module, "_encode", lambda value, level: pytest.fail(f"json's encoder wrote {value!r}"))
    for value in FLAT_JSON:
        assert json.loads(rows_module.dumps(value)) == value


def test_json_text_of_every_code_point_is_json_dumps_own() -> None:
    text = "".join(map(chr, [*range(0xD800), *range(0xE000, 0x110000)]))
    for value in ([text], {text: text}, {"k": [text]}):
        assert rows_module.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_a_value_json_cannot_encode_fails_alone_and_the_next_values_encode() -> None:
    # An exception mid-encoding (here a value JSON has no form for; in a run, Ctrl-C) must not break dumps for good.
    with pytest.raises(TypeError, match="not JSON serializable"):
        rows_module.dumps({"a": [1, object()]})
    assert rows_module.dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'


def test_text_columns_with_only_strings_and_with_other_values_mixed_in() -> None:
    rows, types, _ = build([{"id": "a", "t": "x", "m": "y"}, {"id": "b", "t": None, "m": 3}, {"id": "c", "m": [1, "z"]}])
    assert (types["t"], rows["t"]) == (ColumnType.TEXT, ["x", None, None])
    assert (types["m"], rows["m"]) == (ColumnType.TEXT, ["y", "3", '[1,"z"]'])


def test_keys_that_are_not_strings_share_the_column_of_their_text_across_batches() -> None:
    columns = ColumnMap(None, reserved=LOAD_COLUMNS)
    builder = RowBuilder(columns, depth=3)
    builder.add({"id": "a", 1: "int key", "n": {2: "deep"}}, AT)
    builder.add({"id": "b", "1": "text key", "n": {"2": "deep text"}}, AT)
    builder.add({"id": "c", 1: "first", "1": "last wins"}, AT)
    one, deep = columns.name(("1",)), columns.name(("n", "2"))
    first = builder.take(LOAD)[0].to_pydict()
    assert (first[one], first[deep]) == (["int key", "text key", "last wins"], ["deep", "deep text", None])
    builder.add({"id": "d", "n": {2: "next batch"}}, AT)
    second = builder.take(LOAD)[0].to_pydict()
    assert (second[one], second[deep]) == ([None], ["next batch"])


def _random_value(rng, depth: int):
    roll = rng.random()
    if depth < 4 and roll < 0.15:
        return {rng.choice(KEYS): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return rng.choice([
        None, None, True, False, 0, 7, -3, 2**63, -(2**63) - 1, 2**63 - 1, 1.5, -0.0, float("nan"), "", "text", "Ärger",
        "2026-01-02T03:04:05+00:00", "2026-01-02 03:04:05.123456Z", "2026-02-30T00:00:00+00:00", "2026-01-02T03:04:05",
        "0001-01-01T00:00:00+01:00", [], [1, "a"], [{"x": 1.5}], {},
    ])


KEYS = ["id", "a", "b", "A B", "a_b", "aB", "a b", "c", "$d", "updated", "x" * 70, "x" * 71]


def _random_records(rng, n: int) -> list[dict]:
    shapes = [[rng.choice(KEYS) for _ in range(rng.randint(1, 6))] for _ in range(4)]
    records = []
    for _ in range(n):
        keys = rng.choice(shapes) if rng.random() < 0.8 else [rng.choice(KEYS) for _ in range(rng.randint(0, 6))]
        record = {key: _random_value(rng, 1) for key in keys}
        if rng.random() < 0.02:
            record[1] = "a key that is not a string"
        records.append(record)
    return records


@pytest.mark.parametrize("seed", range(40))
def test_records_settled_in_bulk_give_what_one_record_at_a_time_gives(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # RowBuilder puts the values of up to SETTLE_ROWS records into its columns at once (_leaves, _extend); with
    # _leaves refusing every time, each record goes through _add alone. Both must give the same tables and columns.
    rng = random.Random(seed)
    monkeypatch.setattr(rows_module, "SETTLE_ROWS", rng.choice([1, 3, 7, 50]))
    batches = [_random_records(rng, rng.randint(0, 40)) for _ in range(rng.randint(1, 4))]
    saved = [[["updated"], "updated", "timestamp"], [["a"], "a", "bigint"]] if seed % 2 else None

    def load(bulk: bool) -> list:
        if not bulk:
            monkeypatch.setattr(rows_module, "_leaves", lambda *args: None)
        columns = ColumnMap(copy.deepcopy(saved), reserved=LOAD_COLUMNS)
        builder = RowBuilder(columns, depth=3)
        out = []
        for batch in batches:
            for record in copy.deepcopy(batch):
                builder.add(record, AT)
            table, cols = builder.take(LOAD)
            out.append((repr(table.to_pydict()), table.schema, cols, columns.to_state()))
        monkeypatch.undo() if not bulk else None
        return out

    assert load(True) == load(False)
