"""Saved stream state: versioned when written, validated when read, one clear error naming table and stream."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from engine.state import STATE_VERSION, UNRESOLVED_VERSION, StateError, decode_state, encode_state, mark_unresolved, unresolved_until

GOOD_COLUMNS = [[["id"], "id", "text"], [["location", "city"], "location_city", None]]
HINT = "`klx state reset CONFIG --streams profiles` deletes that row; the stream then syncs again from start_date"


def decode(value: object) -> dict:
    text = value if isinstance(value, str) or value is None else json.dumps(value)
    return decode_state(text, stream="profiles", table="main.kl_klx_state")


def test_state_is_saved_with_its_format_version() -> None:
    state = encode_state({"": "2026-01-01T00:00:00+00:00"}, GOOD_COLUMNS)
    assert state == {"version": STATE_VERSION, "cursor": {"": "2026-01-01T00:00:00+00:00"}, "columns": GOOD_COLUMNS}
    assert decode(state) == state


def test_the_original_unversioned_state_is_read() -> None:
    state = {"cursor": {"channel=email": "2026-01-01T00:00:00+00:00"}, "columns": GOOD_COLUMNS}
    assert decode(state) == state


def test_covered_ranges_of_a_sliced_read_are_saved_only_when_there_are_some_and_come_back_in_utc() -> None:
    assert "covered" not in encode_state({}, GOOD_COLUMNS, {"": []})
    state = encode_state({"": "2026-01-01T00:00:00+00:00"}, GOOD_COLUMNS, {"": [["2026-02-01T01:00:00+01:00", "2026-03-01T00:00:00"]]})
    assert decode(state)["covered"] == {"": [["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"]]}
    # A state without it (any older klx) reads as nothing covered beyond the cursor.
    assert "covered" not in decode({"cursor": {"": "2026-01-01T00:00:00+00:00"}})


def test_cursors_come_back_in_utc() -> None:
    assert decode({"cursor": {"": "2026-01-01T02:00:00+02:00", "x": "2026-01-01T00:00:00"}})["cursor"] == {
        "": "2026-01-01T00:00:00+00:00", "x": "2026-01-01T00:00:00+00:00"
    }


@pytest.mark.parametrize(
    "text, problem",
    [
        (None, "empty (NULL)"),  # a row whose state column is NULL (said 'not JSON (the JSON object must be str...)')
        ("{not json", "not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
        ("", "not JSON (Expecting value: line 1 column 1 (char 0))"),
        ("[1, 2]", "a list, not a JSON object"),
        ('"cursor"', "a string, not a JSON object"),
        ("null", "null, not a JSON object"),
        ({"cursor": "2026-01-01"}, "cursor is a string, not an object of partition -> ISO datetime"),
        ({"cursor": [["", "2026-01-01"]]}, "cursor is a list, not an object of partition -> ISO datetime"),
        ({"cursor": {"": "yesterday"}}, "cursor[\"\"] is 'yesterday', not an ISO datetime"),
        ({"cursor": {"": 1767225600}}, "cursor[\"\"] is 1767225600, not an ISO datetime"),
        ({"cursor": {"a": "0001-01-01T00:00:00+01:00"}}, "cursor[\"a\"] is '0001-01-01T00:00:00+01:00', outside the datetimes klx saves"),
        ({"columns": {"id": "text"}}, "columns is an object, not a list of [path, column, type]"),
        ({"columns": [["id", "id"]]}, "columns[0] is ['id', 'id'], not [path, column, type]"),
        ({"columns": [[[], "id", "text"]]}, "columns[0] path [] is not a non-empty list of strings"),
        ({"columns": [[["id"], 5, "text"]]}, "columns[0] column 5 is not a name klx gives a field"),
        ({"columns": [[["x"], "received_at", "text"]]}, "columns[0] column 'received_at' is not a name klx gives a field"),
        ({"columns": [[["id"], "id", "uuid"]]}, "columns[0] type 'uuid' is not one of bigint, boolean, double, json, text, timestamp"),
        ({"columns": [[["a"], "x", None], [["b"], "x", None]]}, "columns[1] repeats path ['b'] or column 'x'"),
        ({"covered": [["2026-01-01", "2026-02-01"]]}, "covered is a list, not an object of partition -> [[from, to], ...]"),
        ({"covered": {"": "2026-01-01"}}, "covered[\"\"] is a string, not a list of [from, to]"),
        ({"covered": {"": [["2026-01-01"]]}}, "covered[\"\"] holds ['2026-01-01'], not [from, to]"),
        ({"covered": {"": [["2026-01-01", "soon"]]}}, "covered[\"\"] is 'soon', not an ISO datetime"),
        ({"covered": {"": [["2026-02-01", "2026-01-01"]]}}, "covered[\"\"] holds ['2026-02-01', '2026-01-01'], an empty range"),
        ({"version": "1"}, "version '1' is not a positive whole number"),
        ({"version": 2, "unresolved": "later"}, "unresolved is 'later', not an ISO datetime"),
        ({"start": "soon"}, "start is 'soon', not an ISO datetime"),  # the start_date the cursors count from
        ({"version": 0}, "version 0 is not a positive whole number"),
    ],
)
def test_an_unusable_state_is_one_error_naming_the_table_and_stream(text: object, problem: str) -> None:
    with pytest.raises(StateError) as raised:
        decode(text)
    assert str(raised.value) == f"state of stream profiles in table main.kl_klx_state: {problem}\n  hint: {HINT}"
    assert raised.value.exit_code == 4


def test_a_state_from_a_newer_klx_is_refused_not_overwritten() -> None:
    with pytest.raises(StateError) as raised:
        decode({"version": UNRESOLVED_VERSION + 1, "cursor": {}, "anything": "new"})
    assert str(raised.value) == (
        "state of stream profiles in table main.kl_klx_state: written by a newer klx "
        f"(state format {UNRESOLVED_VERSION + 1}; this klx reads up to {UNRESOLVED_VERSION}); left as it is\n"
        "  hint: upgrade klx to run this stream"
    )


def test_a_state_saying_its_table_may_repeat_keys_is_version_2_and_round_trips() -> None:
    # Only such a state is version 2: an older klx, which would load on and never resolve the repeats, refuses it.
    state = encode_state({"": "2026-01-01T00:00:00+00:00"}, GOOD_COLUMNS)
    assert unresolved_until(state) is None
    marked = mark_unresolved(state, datetime(2026, 3, 1, 1, tzinfo=timezone(timedelta(hours=1))))
    assert marked["version"] == UNRESOLVED_VERSION == 2 and state["version"] == STATE_VERSION == 1
    read = decode(json.dumps(marked))
    assert unresolved_until(read) == datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert read == {**state, "version": 2, "unresolved": "2026-03-01T00:00:00+00:00"}
