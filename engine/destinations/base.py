"""What every destination offers the engine: typed columns, state, and atomic table loads."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import pyarrow as pa


class ColumnType(enum.Enum):
    """Warehouse-neutral column types; each dialect maps them (sql.TYPE_MAP)."""

    BOOLEAN = "boolean"
    BIGINT = "bigint"
    DOUBLE = "double"
    TIMESTAMP = "timestamp"  # timezone-aware, UTC
    TEXT = "text"
    JSON = "json"  # arrays and objects deeper than the flattening limit; serialised JSON text in batches


# Arrow type each ColumnType travels as inside a batch (JSON travels as its text).
ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    ColumnType.BOOLEAN: pa.bool_(),
    ColumnType.BIGINT: pa.int64(),
    ColumnType.DOUBLE: pa.float64(),
    ColumnType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    ColumnType.TEXT: pa.string(),
    ColumnType.JSON: pa.string(),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """One warehouse column."""

    name: str
    type: ColumnType


@dataclass(frozen=True, slots=True, kw_only=True)
class TableSpec:
    """The target table of one stream."""

    name: str  # full name, prefix included, e.g. kl_rudder_profiles
    primary_key: tuple[str, ...]
    cursor: str | None  # column whose larger value wins on MERGE; None: the newest batch wins


class TableLoad(Protocol):
    """One stream's load into one table; see Destination.begin."""

    def write(self, batch: pa.Table, columns: Sequence[Column], state: dict[str, Any]) -> None:
        """Evolve the table to `columns`, MERGE `batch` on the key and save `state`, in one transaction."""

    def finish(self, state: dict[str, Any]) -> None:
        """Make the load visible (a replace swaps the new contents in) and save `state`, in one transaction."""

    def abort(self) -> None:
        """Drop whatever a replace load staged; the target table is left as it was."""


class Destination(Protocol):
    """A warehouse connection; one per run."""

    dialect: str

    def read_state(self, stream: str) -> dict[str, Any] | None:
        """The state last saved for `stream`, or None."""

    def begin(self, stream: str, table: TableSpec, *, replace: bool) -> TableLoad:
        """Start loading `stream` into `table`; with replace=True rows go to a shadow table swapped in by finish()."""

    def close(self) -> None:
        """Release the connection."""
