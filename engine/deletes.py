"""Keys an incremental read must delete: records it re-read that the stream's record filter now drops."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from .records import parse_datetime
from .rows import ColumnMap
from .schema import ARROW_TYPES, ColumnType


class PendingDeletes:
    """Primary keys of dropped records, collected between two warehouse writes (spec: `on_filter_miss: delete`)."""

    def __init__(self, columns: ColumnMap, primary_key: tuple[str, ...]) -> None:
        self.columns = columns
        self.primary_key = primary_key
        self.keys: dict[tuple[Any, ...], None] = {}  # insertion-ordered set

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, record: dict[str, Any]) -> None:
        """`record` no longer passes the filter: its row must go."""
        self.keys[self._key(record)] = None

    def discard(self, record: dict[str, Any]) -> None:
        """`record` passes the filter again later in the same batch: keep its row."""
        self.keys.pop(self._key(record), None)

    def take(self) -> pa.Table | None:
        """The collected keys as an Arrow table of the key columns (warehouse names and types); resets."""
        if not self.keys:
            return None
        arrays, names = [], []
        for index, field in enumerate(self.primary_key):
            path = (field,)
            kind = self.columns.types.get(path) or ColumnType.TEXT
            values = [key[index] for key in self.keys]
            if kind is ColumnType.TIMESTAMP:
                values = [parse_datetime(v) for v in values]
            elif kind in (ColumnType.TEXT, ColumnType.JSON):
                values = [None if v is None else str(v) for v in values]
            arrays.append(pa.array(values, type=ARROW_TYPES[kind]))
            names.append(self.columns.name(path))
        self.keys = {}
        return pa.Table.from_arrays(arrays, names=names)

    def _key(self, record: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(record.get(field) for field in self.primary_key)
