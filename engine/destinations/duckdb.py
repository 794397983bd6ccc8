"""The embedded default destination: one DuckDB file (or :memory:)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import pyarrow as pa
from sqlglot import exp

from engine import sql
from engine.destinations import DestinationConfig, check_options, config_relative, destination, option_where, schema_option
from engine.destinations.warehouse import SHADOW_SUFFIX, STAGING_TABLE, SqlDestination
from engine.errors import ConfigError, WarehouseError
from engine.schema import Column

if TYPE_CHECKING:
    import duckdb

__all__ = ["DuckDBDestination", "SHADOW_SUFFIX"]

DIALECT = "duckdb"
OPTIONS = ("path", "schema", "storage_version", "memory_limit", "threads")
# DuckDB's own default is 80% of the machine's memory, which it fills with cached table blocks as a table
# grows: klx's batches are bounded, so a fixed limit bounds the run's memory whatever the table's size.
# Operators that need more spill to the temp directory beside the file.
DEFAULT_MEMORY_LIMIT = "128MB"
# DuckDB settings that bound its memory. Its bundled allocator keeps freed pages for reuse (about a second,
# and only while it is busy): after a batch's MERGE and commit that was 50-120 MB resident against 20-30 MB
# in use. The first three hand them back after each task and each large free, and purge in the background;
# a sync's median RSS fell by about 40 MB (bench/README.md).
MEMORY_SETTINGS: dict[str, Any] = {
    "allocator_flush_threshold": "1MiB",
    "allocator_bulk_deallocation_flush_threshold": "1MiB",
    "allocator_background_threads": True,
    # A checkpoint (in the commit that fills the write-ahead log past this) briefly needs memory in proportion to
    # what it writes: at DuckDB's default of 16 MiB it was the peak of a sync, ~90 MB for a second. 8 MiB took
    # ~28 MB off that peak at no measured CPU cost; 4 MiB ~35 MB, but ~20% more CPU (bench/README.md).
    "checkpoint_threshold": "8MiB",
    # Each checkpoint writes what came since the last one as a new row group, and by default later checkpoints
    # merge neighbouring row groups up to DuckDB's 122,880 rows, rewriting all of them: memory in proportion to
    # the merged row group (events: up to ~125 MB at a time, capped only by memory_limit), so a sync's peak grew
    # with the table. Without those merges a checkpoint writes only what is new; the table keeps row groups of a
    # checkpoint's rows (~19,000 events, ~2,900 profiles), which another DuckDB process that writes to the file
    # may merge later (bench/README.md, Session 5). Deleted rows are reclaimed only by those merges, though: a
    # connection that DELETEs turns them back on (DuckDBDestination.execute).
    "max_vacuum_tasks": 0,
}
# DuckDB keeps blocks cached until it needs their room, up to memory_limit: those each checkpoint writes and
# those a query reads (the key column a batch is matched against). A load reads none of them back, yet its
# cache grew with its table. After each commit the limit drops to this for a moment, which evicts them (the
# statements keep the whole memory_limit).
CACHE_AFTER_COMMIT = "32MB"
_MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)
_CATALOG = "klx"  # the file's name inside the connection when it is ATTACHed with a storage version
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


@destination("duckdb")
class DuckDBDestination(SqlDestination):
    """A DuckDB database; tables live in `schema`, state in <prefix>klx_state."""

    dialect = DIALECT

    def __init__(
        self,
        *,
        path: str,
        schema: str = "main",
        table_prefix: str = "",
        storage_version: str | None = None,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
        threads: int | None = None,
        create: bool = True,
    ) -> None:
        import duckdb  # only a DuckDB run pays for the driver

        self._duckdb = duckdb
        self.driver_errors = (duckdb.Error,)
        self.path = path
        self.schema = schema
        self.table_prefix = table_prefix
        # A database in memory has no file to evict to (DuckDB would spill its tables to ./.tmp).
        in_file = not path.startswith((":memory:", "md:")) and _bytes(memory_limit) > _bytes(CACHE_AFTER_COMMIT)
        self._evictions = [sql.render(_set_memory_limit(limit), DIALECT) for limit in (CACHE_AFTER_COMMIT, memory_limit)] if in_file else []
        settings: dict[str, Any] = {"memory_limit": memory_limit, **MEMORY_SETTINGS}
        if threads is not None:
            settings["threads"] = threads
        try:
            if storage_version is None:
                self._con = duckdb.connect(path, config=settings)
            else:
                # A file other tools (duckdb 1.x, dbt-duckdb, BI tools) can open: written in their storage format.
                self._con = duckdb.connect(config=settings)
                self._con.execute(sql.render(_attach(path, storage_version), DIALECT))
                self._con.execute(sql.render(exp.Use(this=sql.ident(_CATALOG)), DIALECT))
        except duckdb.Error as err:
            raise WarehouseError(f"cannot open DuckDB database {path!r}: {err}", hint=_open_hint(str(err), storage_version)) from err
        self._merging = False  # whether checkpoints merge row groups again (after a DELETE: execute)
        self._con.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ -> TIMESTAMP (adopted tables) casts in UTC
        if create:
            self.ensure_schema()

    @classmethod
    def from_config(cls, config: DestinationConfig, *, create: bool = True) -> DuckDBDestination:
        """Validate `path` (required), `schema` (default main), `storage_version`, `memory_limit` and `threads`, then connect.
        Without `create`, a file that does not exist yet is not made: an empty database in memory stands in."""
        check_options(config, allowed=OPTIONS, required=("path",))
        for key in OPTIONS:
            if key != "threads" and key in config.options and not isinstance(config.options[key], str):
                raise ConfigError(f"destination.{key}: must be a string", where=option_where(config, key))
        memory_limit = config.options.get("memory_limit", DEFAULT_MEMORY_LIMIT)
        if not _MEMORY.fullmatch(memory_limit.strip()):
            raise ConfigError(
                f"destination.memory_limit: {memory_limit!r} is not a size like 256MB or 1GB", where=option_where(config, "memory_limit")
            )
        threads = config.options.get("threads")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise ConfigError(f"destination.threads: {threads!r} is not a whole number of at least 1", where=option_where(config, "threads"))
        version = config.options.get("storage_version")
        if version is not None and not re.fullmatch(r"v\d+\.\d+\.\d+|latest", version):
            raise ConfigError(
                f"destination.storage_version: {version!r} is not a DuckDB version like v1.2.0",
                where=option_where(config, "storage_version"),
            )
        path = config.options["path"]
        # ":memory:" and "md:" (MotherDuck) name no file.
        path = path if path.startswith((":memory:", "md:")) else config_relative(config, path)
        if not create and not path.startswith((":memory:", "md:")) and not Path(path).exists():
            path, version = ":memory:", None
        return cls(
            path=path,
            schema=schema_option(config, "main"),
            table_prefix=config.table_prefix,
            storage_version=version,
            memory_limit=memory_limit.strip(),
            threads=threads,
            create=create,
        )

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The open connection, for reading loaded tables (run summaries, tests)."""
        return self._con

    def execute(self, kind: str, table: str, statement: exp.Expr, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """As SqlDestination runs it; from the first DELETE on, checkpoints merge row groups again.

        A deleted row stays in its row group, marked, until a checkpoint's merges rewrite the group: with merges
        off for good, a table that loses rows on every run (on_filter_miss: delete, a DELETE + INSERT upsert)
        would grow with every run (measured: 10% of 200,000 rows replaced by DELETE + INSERT 30 times took the
        file from 10 to 24 MB and 32 row groups; with merges, 12 MB and 3). The checkpoint that writes the
        deletes, or a later one, then merges the tables it writes, at the memory cost MEMORY_SETTINGS avoids
        in runs that delete nothing.
        """
        if isinstance(statement, exp.Delete) and not self._merging:
            self._con.execute("RESET max_vacuum_tasks")
            self._merging = True
        return super().execute(kind, table, statement, params)

    def run_sql(self, text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Execute one statement and fetch its rows."""
        cursor = self._con.execute(text, list(params))
        return cursor.fetchall() if cursor.description else []

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN … COMMIT; ROLLBACK on any exception."""
        self._con.begin()
        try:
            yield
            self._con.commit()
        except BaseException:
            self.rollback()
            raise
        self._evict_cache()

    def _evict_cache(self) -> None:
        """Lower memory_limit to CACHE_AFTER_COMMIT and put it back: DuckDB evicts cached blocks down to the lower one."""
        with self.frugal():
            pass

    @contextlib.contextmanager
    def frugal(self) -> Iterator[None]:
        """Statements whose memory grows with a table's size (an aggregate over its keys) run under memory_limit
        lowered to CACHE_AFTER_COMMIT: DuckDB spills their hash tables rather than fill the whole limit.

        Measured on 1,000,000 random 26-character keys: the aggregate resolving a full refresh's repeated keys
        took 103 MB at the 128 MB limit, 51 at a 48 MB one, for 0.17 and 0.18 s (bench/README.md, Session 8).
        """
        lowered = False
        if self._evictions:
            try:
                self._con.execute(self._evictions[0])
                lowered = True
            except self._duckdb.Error:  # more than that is pinned and cannot be evicted: the whole limit stays
                pass
        try:
            yield
        finally:
            if lowered:
                self._con.execute(self._evictions[1])

    @contextlib.contextmanager
    def staged(self, batch: pa.Table, columns: Sequence[Column], name: str = STAGING_TABLE) -> Iterator[str]:
        """`batch` registered as a view: the upsert reads the Arrow data in place, no copy.

        Registered outside the transaction: an aborted transaction refuses to unregister it.
        """
        self._con.register(name, batch)
        try:
            yield name
        finally:
            self._con.unregister(name)

    def rollback(self) -> None:
        """Roll back the open transaction, if any."""
        with contextlib.suppress(self._duckdb.TransactionException):
            self._con.rollback()

    def close(self) -> None:
        """Release the connection."""
        self._con.close()


def _bytes(size: str) -> float:
    """A size as from_config accepts it (256MB, 1.5GiB) in bytes."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?i?B)", size.strip(), re.IGNORECASE)
    if found is None:
        raise ValueError(f"not a size: {size!r}")
    unit = found[2].upper()
    return float(found[1]) * (1024 if "I" in unit else 1000) ** "BKMGT".index(unit[0])


def _set_memory_limit(limit: str) -> exp.Set:
    """SET memory_limit = '<limit>' (a size from_config validated; SET takes no parameters)."""
    return exp.Set(expressions=[exp.SetItem(this=exp.EQ(this=exp.var("memory_limit"), expression=exp.Literal.string(limit)))])


def _attach(path: str, storage_version: str) -> exp.Attach:
    """ATTACH 'path' AS klx (STORAGE_VERSION 'v…'); ATTACH takes no parameters, so both are literals."""
    option = exp.AttachOption(this=exp.var("STORAGE_VERSION"), expression=exp.Literal.string(storage_version))
    return exp.Attach(this=exp.alias_(exp.Literal.string(path), sql.ident(_CATALOG)), expressions=[option])


def _open_hint(message: str, storage_version: str | None) -> str:
    """What to do about a file DuckDB cannot open: a lock held by another process, a version, or the folder."""
    locked = _LOCK_HOLDER.search(message)
    if locked:
        return (
            f"another process holds the DuckDB file open: {locked['program']} (PID {locked['pid']}); "
            "close it (a DuckDB shell, notebook or BI tool) or wait for the other klx run, then retry"
        )
    if storage_version is not None and "STORAGE_VERSION" in message.upper():
        return "check destination.storage_version: use a DuckDB version like v1.2.0"
    return "check destination.path: its folder must exist and be writable, and the file itself (when it exists) writable by this user"
