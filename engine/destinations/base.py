"""What every destination offers the engine: typed columns, state, and atomic table loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import pyarrow as pa

from engine.schema import Column, ColumnType, TableSpec

__all__ = ["Column", "ColumnType", "Destination", "TableLoad", "TableSpec", "WriteCounts"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteCounts:
    """What one write did to the table: rows new to it, rows whose key existed and changed, columns it gained."""

    inserted: int
    updated: int
    columns_added: tuple[str, ...] = field(default=())


class TableLoad(Protocol):
    """One stream's load into one table; see Destination.begin."""

    def write(self, batch: pa.Table, columns: Sequence[Column], state: dict[str, Any] | None, deletes: pa.Table | None = None) -> WriteCounts | None:
        """Evolve the table to `columns`, MERGE `batch` on the key, DELETE the keys in `deletes` and save `state`, in one transaction; what changed.

        `state` None leaves the saved state as it is: a replace load's batches (its rows become visible only at finish()).

        `deletes` (primary-key columns only, the table's types) comes after the MERGE: a key the source
        dropped since it was last read goes, even if an older copy of it is in `batch`.
        """

    def finish(self, state: dict[str, Any]) -> WriteCounts | None:
        """Make the load visible (a replace swaps the new contents in) and save `state`, in one transaction.

        Returns what finishing changed in the counts the writes returned, or None: a load that resolves keys
        written more than once lowers inserted by the rows it removes; one that merges the rows it gathered
        counts them then. The writes and finish() together count what a MERGE of each batch would have.
        """

    def abort(self) -> None:
        """Drop whatever a replace load staged; the target table is left as it was (an incremental load's committed
        batches stay, or go into it if they were gathered apart)."""


class Destination(Protocol):
    """A warehouse connection; one per run."""

    dialect: str
    # Each batch (one transaction) holds up to this many times api.batch_rows rows and run.BATCH_BYTES of
    # responses: more than 1 where a transaction costs round trips of a remote service (Snowflake).
    batch_scale: int

    def read_state(self, stream: str) -> dict[str, Any] | None:
        """The state last saved for `stream`, or None."""

    def count_rows(self, table: str) -> int:
        """How many rows `table` holds; 0 when it does not exist (the empty-refresh guard asks)."""
    def append_run(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append one run's rows (one per stream, in sql.RUNS_COLUMNS order) to <prefix>klx_runs."""

    def read_runs(self, limit: int) -> list[dict[str, Any]]:
        """The rows of the newest `limit` runs, newest first (column name -> value)."""

    def delete_state(self, stream: str) -> None:
        """Forget the state saved for `stream`."""

    def columns_of(self, table: str) -> dict[str, Any]:
        """The columns of `table` in order (name -> warehouse type); empty when it does not exist."""

    def has_table(self, table: str) -> bool:
        """Whether `table` (as the config names it) exists."""

    def alive(self) -> bool:
        """Whether the connection still answers: after a refused statement, whether other loads can go on."""

    def begin(self, stream: str, table: TableSpec, *, replace: bool) -> TableLoad:
        """Start loading `stream` into `table`; with replace=True rows go to a shadow table swapped in by finish()."""

    def prepare(self, tables: Sequence[str], counted: Sequence[str] = ()) -> None:
        """The tables this run loads (as the config names them): a destination may read at once what it will ask
        about each (whether it exists, its columns, and for those in `counted`, loaded incrementally, its rows),
        where asking each as its load begins costs a round trip."""

    def cancel(self) -> None:
        """From another thread, as a run is interrupted (Ctrl-C, SIGTERM): end the statement the warehouse is running
        for it, if any, so its batch rolls back now rather than when the statement ends (a long MERGE, a lock wait)."""

    def claim(self) -> None:
        """Hold the destination's schema and table prefix for this run, or raise LockedError naming who does: the
        config's file lock covers one config file, not two (on two machines) loading the same tables."""

    def close(self) -> None:
        """Release the connection."""
