"""Warehouse-neutral table vocabulary shared by rows, SQL and destinations."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pyarrow as pa


class ColumnType(enum.Enum):
    """Warehouse-neutral column types; each dialect maps them (sql.type_map)."""

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
    # A column holding each batch's load time (uuid_ts): one value per batch, later than every batch before
    # it. A replace load, an incremental load into an empty table, and one gathering batches to merge them
    # (into a large table) write their batches without matching their keys, and keep, of a key written more
    # than once, the row a MERGE of the batches in this order would have kept. None: every batch is matched
    # as it is written (engine/destinations/table_load.py, SqlLoad).
    loaded_at: str | None = None
