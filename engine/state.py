"""A stream's saved state (cursors and column map): its format, version and validation when read back."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from .errors import WarehouseError
from .rows import LOAD_COLUMNS
from .schema import ColumnType

# Format written by this klx. A state without "version" is the original format, read as version 1.
# Optional keys added since (an older klx ignores them and stays correct, so the version stays):
# "covered" {partition: [[from, to], ...]}, ranges beyond the partition's cursor a sliced read has read
# in full (engine/slices.py); without them a rerun reads from the cursor. "start" (ISO), the start_date the
# cursors count from: a start_date moved before it has a gap below them to read (plan.py: earlier_start).
STATE_VERSION = 1
# Version 2 adds "unresolved": the load time (ISO) of the last batch a deferred load wrote to the table
# without matching its keys (engine/destinations/table_load.py): until that load finishes, the table may hold
# a key more than once, and the stream's next load must resolve them. An older klx would load on and never
# resolve them, so a state carrying it says version 2, which an older klx refuses; finish() saves version 1.
UNRESOLVED_VERSION = 2
UNRESOLVED = "unresolved"
_TYPES = frozenset(t.value for t in ColumnType)


class StateError(WarehouseError):
    """A saved state row klx cannot use: corrupt, written by hand, or by a newer klx (exit 4, the warehouse's content)."""


def encode_state(cursors: dict[str, str], columns: list[list[Any]], covered: dict[str, list[list[str]]] | None = None,
                 start: datetime | None = None) -> dict[str, Any]:
    """The state to save for one stream, stamped with this klx's format version; `start` the start_date its cursors count from."""
    state = {"version": STATE_VERSION, "cursor": dict(cursors), "columns": columns}
    if start is not None:
        state["start"] = start.astimezone(timezone.utc).isoformat()
    kept = {key: ranges for key, ranges in (covered or {}).items() if ranges}
    if kept:
        state["covered"] = kept
    return state


def without_cursors(state: dict[str, Any]) -> dict[str, Any]:
    """`state` with what it says about rows in its table forgotten (cursors, covered ranges, keys to resolve):
    its column names kept."""
    return {key: value for key, value in state.items() if key not in ("cursor", "covered", "start", UNRESOLVED)}


def decode_state(text: Any, *, stream: str, table: str) -> dict[str, Any]:
    """The state saved for `stream` in `table`, validated; one StateError naming both when it is unusable.

    Cursor values come back as ISO datetimes in UTC, so planning can compare and subtract them.
    """

    def fail(what: str, hint: str | None = None) -> StateError:
        return StateError(
            f"state of stream {stream} in table {table}: {what}",
            hint=hint or f"`klx state reset CONFIG --streams {stream}` deletes that row; the stream then syncs again from start_date",
        )

    if text is None:
        raise fail("empty (NULL)")
    try:
        state = json.loads(text)
    except (TypeError, ValueError, RecursionError) as err:
        raise fail(f"not JSON ({_short(err)})") from err
    if not isinstance(state, dict):
        raise fail(f"{_kind(state)}, not a JSON object")
    version = state.get("version", STATE_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise fail(f"version {_short(version)} is not a positive whole number")
    if version > UNRESOLVED_VERSION:
        raise fail(
            f"written by a newer klx (state format {version}; this klx reads up to {UNRESOLVED_VERSION}); left as it is",
            hint="upgrade klx to run this stream",
        )
    cursors = state.get("cursor", {})
    if not isinstance(cursors, dict):
        raise fail(f"cursor is {_kind(cursors)}, not an object of partition -> ISO datetime")
    if "cursor" in state:
        state["cursor"] = {key: _cursor(key, value, fail) for key, value in cursors.items()}
    _columns(state.get("columns", []), fail)
    if "covered" in state:
        state["covered"] = _covered(state["covered"], fail)
    if "start" in state:
        state["start"] = _cursor("start", state["start"], lambda what: fail(what.replace('cursor["start"]', "start")))
    if UNRESOLVED in state:
        state[UNRESOLVED] = _cursor(UNRESOLVED, state[UNRESOLVED], lambda what: fail(what.replace(f'cursor["{UNRESOLVED}"]', UNRESOLVED)))
    return state


def mark_unresolved(state: dict[str, Any], loaded_at: datetime) -> dict[str, Any]:
    """`state` saying its table may repeat keys, written by a deferred load up to `loaded_at` (see UNRESOLVED)."""
    return {**state, "version": UNRESOLVED_VERSION, UNRESOLVED: loaded_at.astimezone(timezone.utc).isoformat()}


def unresolved_until(state: dict[str, Any] | None) -> datetime | None:
    """The load time of the last batch written without matching its keys, when `state` says keys may repeat."""
    value = (state or {}).get(UNRESOLVED)
    return datetime.fromisoformat(value) if value else None


def _covered(covered: Any, fail: Any) -> dict[str, list[list[str]]]:
    if not isinstance(covered, dict):
        raise fail(f"covered is {_kind(covered)}, not an object of partition -> [[from, to], ...]")
    out = {}
    for key, ranges in covered.items():
        shown = f"covered[{json.dumps(key)}]"
        if not isinstance(ranges, list):
            raise fail(f"{shown} is {_kind(ranges)}, not a list of [from, to]")
        out[key] = []
        for entry in ranges:
            if not (isinstance(entry, list) and len(entry) == 2):
                raise fail(f"{shown} holds {_short(entry)}, not [from, to]")
            start, stop = (_cursor(key, value, lambda what: fail(what.replace(f"cursor[{json.dumps(key)}]", shown))) for value in entry)
            if datetime.fromisoformat(start) >= datetime.fromisoformat(stop):
                raise fail(f"{shown} holds {_short(entry)}, an empty range")
            out[key].append([start, stop])
    return out


def _cursor(key: str, value: Any, fail: Any) -> str:
    shown = f"cursor[{json.dumps(key)}]"
    parsed = None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
    if parsed is None:
        raise fail(f"{shown} is {_short(value)}, not an ISO datetime")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        parsed = parsed.astimezone(timezone.utc)
    except OverflowError:
        parsed = None
    if parsed is None or parsed.year < 1900:  # planning subtracts the lookback from it
        raise fail(f"{shown} is {_short(value)}, outside the datetimes klx saves")
    return parsed.isoformat()


def _columns(columns: Any, fail: Any) -> None:
    if not isinstance(columns, list):
        raise fail(f"columns is {_kind(columns)}, not a list of [path, column, type]")
    paths: set[tuple[str, ...]] = set()
    names: set[str] = set()
    for i, entry in enumerate(columns):
        if not (isinstance(entry, list) and len(entry) == 3):
            raise fail(f"columns[{i}] is {_short(entry)}, not [path, column, type]")
        path, name, kind = entry
        if not (isinstance(path, list) and path and all(isinstance(p, str) for p in path)):
            raise fail(f"columns[{i}] path {_short(path)} is not a non-empty list of strings")
        if not isinstance(name, str) or not name or name in LOAD_COLUMNS:
            raise fail(f"columns[{i}] column {_short(name)} is not a name klx gives a field")
        if kind is not None and kind not in _TYPES:
            raise fail(f"columns[{i}] type {_short(kind)} is not one of {', '.join(sorted(_TYPES))}")
        if tuple(path) in paths or name in names:
            raise fail(f"columns[{i}] repeats path {_short(path)} or column {name!r}")
        paths.add(tuple(path))
        names.add(name)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = " ".join((str(value) if isinstance(value, Exception) else repr(value)).split())
    return text if len(text) <= 100 else text[:97] + "..."
