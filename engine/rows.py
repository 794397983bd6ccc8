"""Records -> rows: flattened, snake_case, collision-free columns with types that only widen."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Any, Iterable, Iterator

import orjson
import pyarrow as pa

from .records import utc_form
from .schema import ARROW_TYPES, Column, ColumnType

Path = tuple[str, ...]

# RudderStack-style load columns carried by every row.
LOAD_COLUMNS: dict[str, ColumnType] = {
    "received_at": ColumnType.TIMESTAMP,
    "uuid_ts": ColumnType.TIMESTAMP,
    "context_sources_job_run_id": ColumnType.TEXT,
    "context_sources_task_run_id": ColumnType.TEXT,
}
# The load column whose value grows batch by batch within a run (TableSpec.loaded_at).
LOAD_ORDER = "uuid_ts"
MAX_NAME = 63  # PostgreSQL's identifier limit, the strictest of the supported warehouses
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})$")
_NUMERIC = (ColumnType.BIGINT, ColumnType.DOUBLE)
_BIGINT_RANGE = range(-(2**63), 2**63)  # a larger integer is stored as its exact decimal text


def snake(name: str) -> str:
    """`Campaign Name` -> campaign_name, `$value` -> value, `firstName` -> first_name."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    if not text:
        return "_"
    return "_" + text if text[0].isdigit() else text


def value_type(value: Any) -> ColumnType | None:
    """The narrowest column type holding `value` (None for null: no information)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ColumnType.BOOLEAN
    if isinstance(value, int):
        return ColumnType.BIGINT if value in _BIGINT_RANGE else ColumnType.TEXT
    if isinstance(value, float):
        return ColumnType.DOUBLE
    if isinstance(value, str):
        return ColumnType.TEXT if timestamp_offset(value) is None else ColumnType.TIMESTAMP
    return ColumnType.JSON


def timestamp_offset(value: str) -> timedelta | None:
    """A timestamp's instant as its distance from 1970-01-01 UTC (parse_datetime's datetime, as Arrow takes it in
    bulk); None when `value` is not a timestamp (value_type says TEXT)."""
    if not _TIMESTAMP.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())  # strip: the pattern's $ lets a final newline through
    except ValueError:
        return None
    if parsed.tzinfo is None:  # the pattern requires an offset; kept to read exactly as parse_datetime does
        parsed = parsed.replace(tzinfo=timezone.utc)
    offset = parsed - _EPOCH
    # parse_datetime gives None where the instant falls outside what a datetime holds in UTC (year 1 to 9999)
    return offset if _FIRST <= offset <= _LAST else None


def timestamp_offsets(values: list[str | None]) -> list[timedelta | None]:
    """[None if v is None else timestamp_offset(v) for v in values], for a column of texts and nulls.

    A column whose texts all have ISO 8601's UTC form YYYY-MM-DDTHH:MM:SS+00:00 is told apart at once
    (records.utc_form), and each text is then only parsed; any other column goes text by text. Profiled on a
    sync: timestamp_offset, with its pattern match per text, was 3% of the run's GIL time.
    """
    texts = [v for v in values if v is not None]
    if texts and utc_form(texts):
        try:
            instants = iter([_fromisoformat(text) - _EPOCH for text in texts])  # +00:00: every one a UTC instant
        except ValueError:  # no such day (2026-02-30, year 0)
            pass
        else:
            return [None if v is None else next(instants) for v in values]
    return [None if v is None else timestamp_offset(v) for v in values]


_fromisoformat = datetime.fromisoformat
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FIRST, _LAST = datetime.min.replace(tzinfo=timezone.utc) - _EPOCH, datetime.max.replace(tzinfo=timezone.utc) - _EPOCH


def widen(a: ColumnType | None, b: ColumnType | None) -> ColumnType | None:
    """The least type holding both: null < everything, BIGINT < DOUBLE, anything else mixed -> TEXT."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if a in _NUMERIC and b in _NUMERIC:
        return ColumnType.DOUBLE
    return ColumnType.TEXT


class ColumnMap:
    """Source path -> (column, type), stable across runs because it is saved in the stream's state."""

    def __init__(self, saved: list[list[Any]] | None, reserved: Iterable[str]) -> None:
        self.columns: dict[Path, str] = {}
        self.types: dict[Path, ColumnType | None] = {}
        self.taken: set[str] = set(reserved)
        for path, name, kind in saved or []:
            key = tuple(path)
            self.columns[key] = name
            self.types[key] = ColumnType(kind) if kind else None
            self.taken.add(name)

    def name(self, path: Path) -> str:
        """The column of `path`, assigning a new collision-free name on first sight."""
        name = self.columns.get(path)
        if name is None:
            name = self._fresh("_".join(snake(p) for p in path))
            self.columns[path] = name
            self.types[path] = None
            self.taken.add(name)
        return name

    def _fresh(self, base: str) -> str:
        if len(base) > MAX_NAME:
            base = base[: MAX_NAME - 9] + "_" + hashlib.sha1(base.encode()).hexdigest()[:8]
        name, n = base, 1
        while name in self.taken:
            n += 1
            suffix = f"_{n}"
            name = base[: MAX_NAME - len(suffix)] + suffix
        return name

    def to_state(self) -> list[list[Any]]:
        """JSON-ready form for the stream state."""
        return [[list(p), n, self.types[p].value if self.types[p] else None] for p, n in self.columns.items()]


class RowBuilder:
    """Collects records of one stream into column lists and hands them over as Arrow batches.

    A path gets its column with its first value that is not null, as RudderStack's loader made columns: a
    field null in every record read so far has none (it would hold only nulls), and a field that is null in
    some records and an object in others has only the columns its objects flatten into. The columns the spec declares (`declared`: derived and include columns)
    get theirs at first sight, null or not, as the key and the cursor are named before any record (StreamSync).
    """

    def __init__(self, columns: ColumnMap, depth: int, declared: Iterable[str] = ()) -> None:
        self.map = columns
        self.depth = depth
        self.declared = {(name,) for name in declared}
        # Column-wise from the start: each path's values, one per row so far (None where a row lacks it), held by
        # a tree of slots keyed by the record's own keys, so a value finds its column without building its path.
        self.root = _Slot((), nested=True)
        self.slots: list[_Slot] = []
        self.count = 0
        self.nbytes = 0  # response bytes the collected rows came from: bounds a batch's memory with its row count
        # received_at by runs of rows, (first row, instant): a page's rows share one datetime object.
        self.received: list[tuple[int, datetime]] = []
        self._at: object = _NO_VALUE  # the instant of the last run
        self.pending: list[dict[str, Any]] = []  # records added since their values last reached the column lists

    def __len__(self) -> int:
        return self.count

    def add(self, record: dict[str, Any], received_at: datetime, size: int = 0) -> None:
        """Take one record (`size` response bytes): flattened into the column lists, widening the column types it
        touches, with the records added before or after it (_settle)."""
        self.pending.append(record)
        self.count += 1
        self.nbytes += size
        if received_at is not self._at:
            self._at = received_at
            self.received.append((self.count - 1, received_at))
        if len(self.pending) >= SETTLE_ROWS:
            self._settle()

    def add_all(self, records: list[dict[str, Any]], received_at: datetime, size: int = 0) -> None:
        """add() each of `records` (`size` response bytes each), in order."""
        done = 0
        while done < len(records):
            taken = records[done : done + SETTLE_ROWS - len(self.pending)]  # settled where add() settles them
            if received_at is not self._at:
                self._at = received_at
                self.received.append((self.count, received_at))
            self.pending += taken
            self.count += len(taken)
            self.nbytes += size * len(taken)
            done += len(taken)
            if len(self.pending) >= SETTLE_ROWS:
                self._settle()

    def _settle(self) -> None:
        """Put the pending records' values into the column lists: in bulk, exactly as _add would one record after
        another, or through _add where a key is not a string or a value not one of JSON's types."""
        records, self.pending = self.pending, []
        if not records:
            return
        first = self.count - len(records)
        leaves = _leaves(records, first, self.depth)
        if leaves is None:
            for row, record in enumerate(records, first):
                self._add(self.root, record, row)
            return
        # Columns are named on first sight, as _add names them: by the row that first holds a value at each new
        # path, then by the path's place among that row's values. A path with only nulls so far gets none.
        first_row = {
            path: row
            for path in leaves
            if path not in self.map.types
            and (row := _first_value(leaves[path]) if path not in self.declared else min(rows[0] for rows, _, _ in leaves[path])) is not None
        }
        new = list(first_row)
        if new:
            place: dict[tuple[int, Path], int] = {}
            for row in set(first_row.values()):
                for n, path in enumerate(_leaf_paths(records[row - first], (), self.depth)):
                    place.setdefault((row, path), n)
            for path in sorted(new, key=lambda p: (first_row[p], place[(first_row[p], p)])):
                self.map.name(path)
        for path, chunks in leaves.items():
            if path in self.map.types:
                self._extend(self._path_slot(path), chunks, first, len(records))

    def _extend(self, slot: _Slot, chunks: list[tuple[list[int], Any, set[type]]], first: int, count: int) -> None:
        """Append rows first..first+count-1 of `slot`'s column (chunks: the rows holding a value, those values and
        their Python classes), widening its type to the least one holding them all, as _add's value-by-value
        widening ends."""
        column = slot.values
        if column is None:  # the path's first value in this batch
            slot.settle(self.map.types[slot.path])
            column = slot.values = [None] * first
        elif len(column) < first:
            column.extend([None] * (first - len(column)))
        if len(chunks) == 1 and len(chunks[0][0]) == count:
            segment = list(chunks[0][1])
        else:
            segment = [None] * count
            for rows, values, _ in chunks:
                for row, value in zip(rows, values):
                    segment[row - first] = value
        current = slot.type
        classes = set().union(*(found for _, _, found in chunks))
        classes.discard(_NONE)
        kind, offsets = None, None
        if current is not ColumnType.TEXT:
            for cls in classes:
                if cls is str:
                    found = ColumnType.TEXT  # unless every value is a timestamp's text (only then can it stay one)
                    if len(classes) == 1 and (current is None or current is ColumnType.TIMESTAMP):
                        offsets = timestamp_offsets(segment)
                        if offsets.count(None) == segment.count(None):
                            found = ColumnType.TIMESTAMP
                elif cls is int:
                    numbers = [v for v in segment if v.__class__ is int]
                    found = ColumnType.BIGINT if min(numbers) in _BIGINT_RANGE and max(numbers) in _BIGINT_RANGE else ColumnType.TEXT
                else:
                    found = _CLASS_TYPES[cls]
                kind = widen(kind, found)
        new = widen(current, kind) if classes else current
        if new is ColumnType.TIMESTAMP and classes:
            slot.texts.extend(v for v in segment if v is not None)
            segment = offsets  # type: ignore[assignment]
        elif current is ColumnType.TIMESTAMP and new is not current:  # a TEXT column holds the texts, not their instants
            texts = iter(slot.texts)
            column[:] = [v if v is None else next(texts) for v in column]
        column.extend(segment)
        if new is not current:
            slot.settle(new)
            self.map.types[slot.path] = new

    def _path_slot(self, path: Path) -> _Slot:
        slot = self.root
        for key in path:
            child = slot.children.get(key)
            slot = child if child is not None else self._slot(slot, key)
        return slot

    def take(self, load: dict[str, Any]) -> tuple[pa.Table, list[Column]]:
        """The collected rows as an Arrow table plus every column the table must have; resets the builder."""
        self._settle()
        # Load columns first: a column first seen in a later batch is appended to the table, so only then
        # is the column order the same whatever the batch size.
        columns, arrays, names = [], [], []
        count = self.count
        for name, kind in LOAD_COLUMNS.items():
            if name == "received_at":
                arrays.append(_instants(self.received, count))
            else:  # one value for the whole batch: converted once (a datetime costs Arrow ~0.3 µs each time)
                arrays.append(pa.repeat(pa.scalar(load.get(name), type=ARROW_TYPES[kind]), count))
            names.append(name)
            columns.append(Column(name=name, type=kind))
        collected = {slot.path: slot.values for slot in self.slots if slot.values is not None}
        for path, name in self.map.columns.items():
            kind = self.map.types[path] or ColumnType.TEXT
            values = collected.get(path) or []
            if len(values) < count:
                values.extend([None] * (count - len(values)))
            arrays.append(_array(values, kind))
            names.append(name)
            columns.append(Column(name=name, type=kind))
        for slot in self.slots:
            slot.values = None
            slot.texts = []
        self.count, self.nbytes, self.received, self._at = 0, 0, [], _NO_VALUE
        return pa.Table.from_arrays(arrays, names=names), columns

    def _add(self, parent: _Slot, record: dict[str, Any], row: int) -> None:
        # One record at a time: what _settle does in bulk, and its way for records it cannot take in bulk (a key that
        # is not a string, a value that is not JSON's). tests/test_rows.py holds the two ways to the same tables.
        slots = parent.children
        for key, value in record.items():
            slot = slots.get(key)
            if slot is None:
                slot = self._slot(parent, key)
            column = slot.values
            # Most values take this way: their column is as long as the rows before this one, and they are null
            # or of the Python type the column takes as it is (str for TEXT, float for DOUBLE...; never dict, so
            # an object to flatten goes on below). Profiled: the checks below cost 2.2 of the 7.2 µs an event
            # record took here.
            if column is not None and len(column) == row:
                cls = value.__class__
                if value is None or cls is slot.takes:
                    column.append(value)
                    continue
                # Next most: a timestamp's text in a TIMESTAMP column, an integer in a BIGINT one (below, the same).
                if cls is str and slot.type is ColumnType.TIMESTAMP:
                    instant = timestamp_offset(value)
                    if instant is not None:
                        column.append(instant)
                        slot.texts.append(value)
                        continue
                elif cls is int and slot.type is ColumnType.BIGINT and value in _BIGINT_RANGE:
                    column.append(value)
                    continue
            # Objects are flattened into <a>_<b>_<c> up to the spec's depth; deeper ones stay JSON.
            if slot.nested and isinstance(value, dict):
                self._add(slot, value, row)
                continue
            if column is None:  # the path's first value in this batch: its column (named on first sight ever)
                if slot.path not in self.map.types:
                    if value is None and slot.path not in self.declared:  # a path that has held nothing but null has no column
                        continue
                    self.map.name(slot.path)
                slot.settle(self.map.types[slot.path])
                column = slot.values = [None] * row
            elif len(column) != row:
                if len(column) > row:  # the same path twice in one record (keys 1 and "1"): the last one wins
                    if column.pop() is not None and slot.type is ColumnType.TIMESTAMP:
                        slot.texts.pop()
                else:
                    column.extend([None] * (row - len(column)))
            if value is None:
                column.append(None)
                continue
            current = slot.type
            cls = value.__class__
            # TEXT is the widest type: once there, a column needs no more inference; nor does a value of
            # the very Python type that made the column what it is.
            if current is ColumnType.TEXT or _SETTLED.get(cls, _UNSETTLED) is current:
                column.append(value)
                continue
            if cls is str and (current is ColumnType.TIMESTAMP or current is None):
                # A timestamp is parsed once, here: its instant goes into the column (take() hands Arrow those
                # in bulk), its text aside in case a later value makes the column TEXT.
                instant = timestamp_offset(value)
                if instant is not None:
                    column.append(instant)
                    slot.texts.append(value)
                    if current is None:
                        slot.settle(ColumnType.TIMESTAMP)
                        self.map.types[slot.path] = ColumnType.TIMESTAMP
                    continue
                kind = ColumnType.TEXT
            elif cls is int and current is ColumnType.BIGINT and value in _BIGINT_RANGE:
                column.append(value)
                continue
            else:
                kind = value_type(value)
            column.append(value)
            if kind is not current:
                if current is ColumnType.TIMESTAMP:  # a TEXT column holds the texts, not their instants
                    texts = iter(slot.texts)
                    column[:-1] = [v if v is None else next(texts) for v in column[:-1]]
                slot.settle(widen(current, kind))
                self.map.types[slot.path] = slot.type

    def _slot(self, parent: _Slot, key: Any) -> _Slot:
        """The slot of `key` under `parent`, made on first sight (a key that is not a string shares its text's slot)."""
        text = key if key.__class__ is str else str(key)
        slot = parent.children.get(text)
        if slot is None:
            path = (*parent.path, text)
            slot = _Slot(path, nested=len(path) < self.depth)
            parent.children[text] = slot
            self.slots.append(slot)
        parent.children[key] = slot
        return slot


SETTLE_ROWS = 1000  # records held before their values reach the column lists (a page of events)
_NONE = type(None)
_CLASS_TYPES = {bool: ColumnType.BOOLEAN, float: ColumnType.DOUBLE, dict: ColumnType.JSON, list: ColumnType.JSON}
_JSON_CLASSES = frozenset({_NONE, bool, int, float, str, dict, list})


def _leaves(records: list[dict[str, Any]], first: int, depth: int) -> dict[Path, list[tuple[list[int], Any, set[type]]]] | None:
    """Each leaf path of rows first.. (`records`) flattened as _add flattens them: the rows holding it, their
    values and those values' Python classes, gathered by groups of objects with the same keys (one transposition each); None when a key is not a
    string or a value not one of JSON's types (_add's way then)."""
    out: dict[Path, list[tuple[list[int], Any, set[type]]]] = {}
    stack: list[tuple[Path, list[int], list[dict[str, Any]]]] = [((), list(range(first, first + len(records))), records)]
    while stack:
        prefix, rows, objects = stack.pop()
        keyed = list(map(tuple, objects))
        groups: dict[tuple[Any, ...], tuple[list[int], list[dict[str, Any]]]] = {}
        if keyed.count(keyed[0]) == len(keyed):  # the usual case (a page's records, mostly): one group, made without a loop
            if not all(key.__class__ is str for key in keyed[0]):
                return None
            groups[keyed[0]] = (rows, objects)
        else:
            for row, item, keys in zip(rows, objects, keyed):
                group = groups.get(keys)
                if group is None:
                    if not all(key.__class__ is str for key in keys):
                        return None
                    group = groups[keys] = ([], [])
                group[0].append(row)
                group[1].append(item)
        nested = len(prefix) + 1 < depth
        for keys, (group_rows, items) in groups.items():
            if not keys:
                continue
            columns = zip(*map(itemgetter(*keys), items)) if len(keys) > 1 else [[item[keys[0]] for item in items]]
            for key, values in zip(keys, columns):
                classes = set(map(type, values))
                if not classes <= _JSON_CLASSES:
                    return None
                path = (*prefix, key)
                if nested and dict in classes:  # objects flatten into the paths beneath; other values stay here
                    inner_rows, inner, here_rows, here = [], [], [], []
                    for row, value in zip(group_rows, values):
                        if value.__class__ is dict:
                            inner_rows.append(row)
                            inner.append(value)
                        else:
                            here_rows.append(row)
                            here.append(value)
                    stack.append((path, inner_rows, inner))
                    if here_rows:
                        out.setdefault(path, []).append((here_rows, here, classes - {dict}))
                else:
                    out.setdefault(path, []).append((group_rows, values, classes))
    return out


def _first_value(chunks: list[tuple[list[int], Any, set[type]]]) -> int | None:
    """The first row of `chunks` (one path's, from _leaves) whose value is not null; None when all are."""
    found = None
    for rows, values, classes in chunks:
        if _NONE not in classes:
            row = rows[0]
        elif len(classes) == 1:
            continue
        else:
            row = next(row for row, value in zip(rows, values) if value is not None)
        found = row if found is None else min(found, row)
    return found


def _leaf_paths(record: dict[str, Any], prefix: Path, depth: int) -> Iterator[Path]:
    """The leaf paths of one record in the order _add meets them."""
    for key, value in record.items():
        path = (*prefix, key)
        if len(path) < depth and value.__class__ is dict:
            yield from _leaf_paths(value, path, depth)
        else:
            yield path


class _Slot:
    """One source path: its values in the current batch, its column type, and the slots of the keys beneath it."""

    __slots__ = ("path", "values", "type", "children", "nested", "texts", "takes")

    def __init__(self, path: Path, *, nested: bool) -> None:
        self.path = path
        self.values: list[Any] | None = None  # None until the path has a value (not an object to flatten) in this batch
        self.type: ColumnType | None = None
        self.children: dict[Any, _Slot] = {}
        self.nested = nested  # whether an object here is flattened into the slots beneath (else it is a JSON value)
        self.texts: list[str] = []  # while the column is TIMESTAMP: the texts of the instants in `values`, in order
        self.takes: type = _NO_VALUE  # the Python type of the values the column takes with no inference

    def settle(self, kind: ColumnType | None) -> None:
        """Set the column's type, and with it the Python type whose values it takes as they are."""
        self.type = kind
        self.takes = _TAKES.get(kind, _NO_VALUE)


# Python type -> the column type its values cannot widen: no inference needed (looked up by class, not enum hash).
_UNSETTLED = object()  # any other Python type: never `is` a column type
_SETTLED = {bool: ColumnType.BOOLEAN, float: ColumnType.DOUBLE, dict: ColumnType.JSON, list: ColumnType.JSON}
# Column type -> the Python type whose values the column stores as they are, with no inference (one of what
# _SETTLED and TEXT allow; any other value goes the longer way). A timestamp's text and an integer always need
# their checks, and a column without a type yet its first value's: TIMESTAMP, BIGINT and None take none.
_TAKES: dict[ColumnType | None, type] = {ColumnType.TEXT: str, ColumnType.BOOLEAN: bool, ColumnType.DOUBLE: float, ColumnType.JSON: list}


class _NoValue:
    """The type no value has: what a column takes as it is when it takes nothing (_TAKES)."""


_NO_VALUE = _NoValue


def _array(values: list[Any], kind: ColumnType) -> pa.Array:
    """One column's values as an Arrow array of its type."""
    if kind is ColumnType.TEXT:
        try:  # most text columns hold only strings: Arrow takes them as they are
            return pa.array(values, type=pa.string())
        except pa.ArrowTypeError:  # a number, boolean, list or object among them: its JSON text
            pass
    elif kind is ColumnType.TIMESTAMP:  # instants as distances from the epoch (RowBuilder._add) and None
        return pa.array(values, type=_DURATION).view(ARROW_TYPES[kind])
    elif kind is ColumnType.DOUBLE:
        try:  # floats, and integers a double holds exactly, as float() gives them; any other integer: float() below
            return pa.array(values, type=pa.float64())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return pa.array(_converted(values, kind), type=ARROW_TYPES[kind])


_DURATION = pa.duration("us")  # the same 64 bits as a timestamp in microseconds: viewed as one, without a copy


def _instants(runs: list[tuple[int, datetime]], count: int) -> pa.Array:
    """The `count` rows' received_at from its runs (RowBuilder.received) as a timestamp array: one distance from
    the epoch per run, repeated for its rows (converting each row's own datetime cost 0.4 µs an event)."""
    offsets: list[timedelta] = []
    ends = [first for first, _ in runs[1:]] + [count]
    for (first, value), end in zip(runs, ends):
        if value is None or value.tzinfo is None:  # Arrow reads a naive datetime as UTC: as it always did
            values = [v for (f, v), e in zip(runs, ends) for _ in range(e - f)]
            return pa.array(values, type=ARROW_TYPES[ColumnType.TIMESTAMP])
        offsets += [value - _EPOCH] * (end - first)
    return pa.array(offsets, type=_DURATION).view(ARROW_TYPES[ColumnType.TIMESTAMP])


def _converted(values: list[Any], kind: ColumnType) -> list[Any]:
    """`values` (one column, all within `kind`) as Arrow takes them for that type."""
    if kind is ColumnType.BIGINT or kind is ColumnType.BOOLEAN:
        return values  # only ints (or only bools) and None: their type never widened
    if kind is ColumnType.TEXT:
        return [v if v is None or v.__class__ is str else dumps(v) for v in values]
    if kind is ColumnType.JSON:  # most of a JSON column's values are often null (a key few records have)
        return [v if v is None else dumps(v) for v in values]
    # DOUBLE: an int as the nearest double (Arrow refuses one a double cannot hold exactly)
    return [v if v is None else float(v) for v in values]


def dumps(value: Any) -> str:
    """Compact JSON text of `value`, however deeply it nests (json.dumps recurses and stops near 1,000 levels)."""
    global _encode
    kind = value.__class__
    if kind is list and not value:
        return "[]"
    # A list or object of strings, integers, booleans, nulls and lists of those (most JSON values: a profile's
    # subscription channels, a list of tags) is written by orjson, 3-7x faster, whose text is then json.dumps'
    # own: the same escapes for every code point, the same digits. It refuses what json would write otherwise
    # (a key that is not a string, an integer beyond 64 bits, a lone surrogate), which then goes to json.
    # Floats stay with json: orjson writes NaN as null and 1e-05 as 0.00001.
    if kind is dict or kind is list:
        items = value.values() if kind is dict else value
        if _SCALARS.issuperset(map(type, items)) or (
            _SCALARS_AND_LISTS.issuperset(map(type, items))
            and all(_SCALARS.issuperset(map(type, item)) for item in items if item.__class__ is list)
        ):
            try:
                return orjson.dumps(value).decode()
            except orjson.JSONEncodeError:
                pass
    try:
        return "".join(_encode(value, 0))
    except RecursionError:
        _encode = _encoder()  # the failed call left its containers marked as being encoded
        return _dumps_iteratively(value)
    except BaseException:
        _encode = _encoder()
        raise


_SCALARS = {str, int, bool, type(None)}  # exact types: a subclass may write itself otherwise
_SCALARS_AND_LISTS = _SCALARS | {list}


def _encoder() -> Any:
    """What json.dumps(value, separators=(",", ":"), ensure_ascii=False) runs, made once rather than for every value.

    json.dumps builds a JSONEncoder and its C encoder on each call: that costs more than encoding a short list.
    """
    settings = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    if json.encoder.c_make_encoder is None:  # no C accelerator: json's own Python encoder
        return lambda value, level: [settings.encode(value)]
    return json.encoder.c_make_encoder(
        {}, settings.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )


_encode = _encoder()


def _dumps_iteratively(value: Any) -> str:
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Text):
            out.append(item)
        elif isinstance(item, dict) and item:
            out.append("{")
            stack.append(_Text("}"))
            for i, (key, child) in enumerate(reversed(item.items())):
                stack.append(child)
                stack.append(_Text(json.dumps(str(key), ensure_ascii=False) + ":"))
                if i < len(item) - 1:
                    stack.append(_Text(","))
        elif isinstance(item, list) and item:
            out.append("[")
            stack.append(_Text("]"))
            for i, child in enumerate(reversed(item)):
                stack.append(child)
                if i < len(item) - 1:
                    stack.append(_Text(","))
        else:  # a scalar, {} or []: nothing to separate
            out.append(json.dumps(item, ensure_ascii=False))
    return "".join(out)


class _Text(str):
    """Literal JSON punctuation on _dumps_iteratively's stack (a plain str there is a value to encode)."""
