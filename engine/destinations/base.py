"""What every destination offers the engine: typed columns, state, and atomic table loads."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import pyarrow as pa

from engine.schema import Column, ColumnType, TableSpec

__all__ = ["Column", "ColumnType", "Destination", "TableLoad", "TableSpec"]


class TableLoad(Protocol):
    """One stream's load into one table; see Destination.begin."""

    def write(self, batch: pa.Table, columns: Sequence[Column], state: dict[str, Any], deletes: pa.Table | None = None) -> None:
        """Evolve the table to `columns`, MERGE `batch` on the key, DELETE the keys in `deletes` and save `state`, in one transaction.

        `deletes` (primary-key columns only, the table's types) comes after the MERGE: a key the source
        dropped since it was last read goes, even if an older copy of it is in `batch`.
        """

    def finish(self, state: dict[str, Any]) -> None:
        """Make the load visible (a replace swaps the new contents in) and save `state`, in one transaction."""

    def abort(self) -> None:
        """Drop whatever a replace load staged; the target table is left as it was."""


class Destination(Protocol):
    """A warehouse connection; one per run."""

    dialect: str

    def read_state(self, stream: str) -> dict[str, Any] | None:
        """The state last saved for `stream`, or None."""

    def count_rows(self, table: str) -> int:
        """How many rows `table` holds; 0 when it does not exist (the empty-refresh guard asks)."""

    def begin(self, stream: str, table: TableSpec, *, replace: bool) -> TableLoad:
        """Start loading `stream` into `table`; with replace=True rows go to a shadow table swapped in by finish()."""

    def close(self) -> None:
        """Release the connection."""
