"""Sorted, filterable record tables and the keyset page walk shared by every endpoint (API-NOTES §1.4)."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from klaviyo_sim.jsonapi import iso, resource, sparse

Key = tuple[Any, str]
# Relationships whose `data` live Klaviyo sends only when `include` names them: the recorded campaigns page
# (fixtures/recorded/read-campaigns.json) has campaign-messages data without include but tags as links only.
DATA_ONLY_WHEN_INCLUDED = ("tags",)


class Table(Protocol):
    """What the query engine needs from a resource store."""

    def ordered(self, field: str) -> Sequence[Key]: ...
    def handle(self, id_: str) -> Any: ...
    def getter(self, handle: Any) -> Callable[[str], object]: ...


def sort_key(value: object, kind: str) -> object:
    """Make nullable sort values comparable (None sorts first)."""
    if value is None:
        return -1 if kind in ("datetime", "integer") else ""
    return value


class SmallTable:
    """An in-memory table of fully materialised rows (everything except profiles and events)."""

    def __init__(self, type_: str, cursor_field: str | None, kinds: dict[str, str], *, micro: bool = False) -> None:
        self.type, self.cursor_field, self.kinds, self.micro = type_, cursor_field, kinds, micro
        self.rows: dict[str, dict] = {}
        self._orders: dict[str, list[Key]] = {}

    def add(self, row: dict) -> None:
        """Insert or replace a row: {"id", "attributes", "keys", "rels"}."""
        row["keys"].setdefault("id", row["id"])
        self.rows[row["id"]] = row
        self._orders.clear()

    def delete(self, id_: str) -> None:
        """Remove a row."""
        del self.rows[id_]
        self._orders.clear()

    def touch(self, id_: str, us: int) -> None:
        """Move a row's cursor to `us` (an update at the sim clock)."""
        row = self.rows[id_]
        row["keys"][self.cursor_field] = us
        row["attributes"][self.cursor_field] = iso(us, micro=self.micro)
        self._orders.clear()

    def ordered(self, field: str) -> list[Key]:
        """(sort value, id) for every row, ascending; cached until the next change."""
        if field not in self._orders:
            kind = self.kinds.get(field, "string")
            self._orders[field] = sorted((sort_key(r["keys"].get(field), kind), i) for i, r in self.rows.items())
        return self._orders[field]

    def handle(self, id_: str) -> dict | None:
        """The row with this id."""
        return self.rows.get(id_)

    def getter(self, handle: dict) -> Callable[[str], object]:
        """Field accessor used by filters."""
        return handle["keys"].get

    def render(self, handle: dict, base: str, fields: dict[str, list[str]], includes: list[str] | None = None) -> dict:
        """The JSON:API resource object; some relationships carry `data` only when `includes` names them."""
        attrs = sparse(handle["attributes"], fields.get(self.type))
        rels = handle.get("rels")
        if rels:
            rels = {name: None if name in DATA_ONLY_WHEN_INCLUDED and name not in (includes or ()) else data
                    for name, data in rels.items()}
        return resource(base, self.type, handle["id"], attrs, rels)


def walk(table: Table, field: str, desc: bool, after: Key | None, low: object, high: object,
         match: Callable[[Callable[[str], object]], bool], limit: int) -> Iterator[Any]:
    """Yield up to `limit` matching handles in (field, id) order strictly after the `after` key."""
    seq = table.ordered(field)
    n = len(seq)
    if not desc:
        start = bisect.bisect_right(seq, after) if after is not None else 0
        if low is not None:
            start = max(start, bisect.bisect_left(seq, (low, "")))
        stop = bisect.bisect_right(seq, (high, "\uffff")) if high is not None else n
        indices: Iterator[int] = iter(range(start, stop))
    else:
        stop = bisect.bisect_left(seq, after) if after is not None else n
        if high is not None:
            stop = min(stop, bisect.bisect_right(seq, (high, "\uffff")))
        start = bisect.bisect_left(seq, (low, "")) if low is not None else 0
        indices = iter(range(stop - 1, start - 1, -1))
    found = 0
    for i in indices:
        if found >= limit:
            return
        handle = table.handle(seq[i][1])
        if handle is not None and match(table.getter(handle)):
            found += 1
            yield handle
