"""What every SQL destination shares: run sqlglot statements, read what tables hold, keep state and run history,
and begin each stream's load (engine/destinations/table_load.py: evolve and adopt tables, upsert, shadow swaps).

A destination module supplies only its connection: how to run one statement, how to stage a batch as a table,
and its transactions. Everything a dialect does differently is data in engine/dialects.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any, ContextManager, Sequence

import pyarrow as pa
from sqlglot import exp

from engine import sql
# The tables a load makes beside its own: prepare() reads them, staged() makes STAGING_TABLE; duckdb.py imports them here.
from engine.destinations.table_load import DELETES_TABLE, PENDING_SUFFIX, SHADOW_SUFFIX, STAGING_TABLE, SqlLoad
from engine.errors import WarehouseError
from engine.schema import Column, TableSpec
from engine.state import decode_state

_RENDERED_MAX = 64  # statements whose SQL text a destination keeps
log = logging.getLogger("klx.warehouse")


# SqlDestination._states: a stream whose state this destination wrote or deleted after reading every stream's.
_WRITTEN = object()


class SqlDestination:
    """Base of the SQL destinations; see base.Destination for what the engine calls."""

    dialect: str
    schema: str
    table_prefix: str
    driver_errors: tuple[type[BaseException], ...] = ()
    staging_schema: str | None = None  # where staged() tables live; None: the session's own (temporary tables)
    upsert_form: str | None = None  # overrides the dialect's upsert form (PostgreSQL before 15 has no MERGE)
    # How the driver's error says a value is longer than its column's VARCHAR(n) allows: attributes of the error
    # and their values (PostgreSQL's SQLSTATE 22001). Empty where the warehouse does not enforce lengths (DuckDB).
    too_long: dict[str, Any] = {}
    batch_scale = 1  # base.Destination.batch_scale
    # Rows a table holds before an incremental load into it gathers rather than matches each batch (SqlLoad):
    # on DuckDB where bench/key_matching.py's two costs cross (about 13 and 16 ms a 2,000-event batch at 100,000
    # rows, 20 and 16 at 250,000). A gathering run also lets DuckDB's merge use its memory_limit.
    gather_from = 250_000
    # Whether the state table exists, once known: read_state looked, or ensure_state_table made sure. Known, it
    # stays so for the run: only klx creates the table, and no other klx run of this prefix runs meanwhile (the lock).
    _state_table: bool | None = None
    # Every stream's saved state text as one read found it (stream -> text), or _WRITTEN for a stream whose state
    # this destination has written or deleted since: read_state reads that one again, on its own.
    _states: dict[str, Any] | None = None
    # prepare(): table -> its columns ({}: absent), as one read found them; an entry goes once it is asked for, or once
    # a statement touches that table (the table may have changed since).
    _prefetched: dict[str, dict[str, exp.DataType]] | None = None
    _counted: dict[str, int] | None = None  # rows of tables prepare() counted, until a statement touches one
    _types_seen: dict[tuple[str, int | None, int | None], exp.DataType] | None = None
    _rendered: dict[int, tuple[exp.Expr, str]] | None = None  # id(statement) -> (statement, its SQL text)
    _state_upsert: tuple[Any, list[tuple[exp.Expr, int]]] | None = None  # (what it depends on, [(statement, parameter pairs)])

    # --- what a destination module supplies -------------------------------------------------------------
    def run_sql(self, text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Execute one statement and return its rows (empty when it returns none)."""
        raise NotImplementedError

    def transaction(self) -> ContextManager[None]:
        """BEGIN … COMMIT; ROLLBACK on any exception."""
        raise NotImplementedError

    def rollback(self) -> None:
        """Roll back the open transaction, if any."""
        raise NotImplementedError

    def staged(self, batch: pa.Table, columns: Sequence[Column], name: str = STAGING_TABLE) -> ContextManager[str]:
        """`batch` (typed as `columns`, plus any column not in them as BIGINT) readable as the yielded table name."""
        raise NotImplementedError

    def frugal(self) -> ContextManager[None]:
        """Statements whose memory grows with a table's size run within this; a warehouse in klx's process (DuckDB)
        caps their memory, one elsewhere has nothing to do."""
        return contextlib.nullcontext()

    def close(self) -> None:
        """Release the connection."""
        raise NotImplementedError

    @classmethod
    def preview_staging(
        cls, schema: str, table_prefix: str, columns: Sequence[Column], name: str, *, first: bool
    ) -> tuple[str, list[exp.Expr]] | None:
        """For `klx sql`: the table a batch of `columns` is staged into, in `schema`, and the statements staged() sends
        to fill it (`first`: the run's first batch); None where staging is the session's own (a temporary table or
        view by its bare name), filled in bulk by the driver with no statement to show."""
        return None

    def grants_for(self, table: str, shadow: str) -> list[exp.Expr]:
        """Statements granting `shadow` what has been granted on `table`, run before a full refresh swaps the shadow
        in: where the swap drops the table and renames its shadow, a BI or dbt role's SELECT would go with the table.
        None here: DuckDB has no grants, and Snowflake's shadow is made with COPY GRANTS."""
        return []

    def cancel(self) -> None:
        """base.Destination.cancel: nothing here. A DuckDB statement of a batch ends in moments; a destination whose
        statements can run long and that can end one from another thread does so in its own module."""

    def claim(self) -> None:
        """base.Destination.claim: nothing to hold here (DuckDB's file admits one writing process; a destination
        that can lock does so in its own module)."""

    def prepare(self, tables: Sequence[str], counted: Sequence[str] = ()) -> None:
        """base.Destination.prepare: the columns of the state table and of each table, its shadow and its pending
        table, in one query. Each load's begin() and the first read_state() asked for theirs: one round trip each,
        11 of a later run's statements for all ten streams on Snowflake. Then the rows of each existing table in
        `counted` (an incremental load's begin counted its own), in one more query: 8 of them."""
        names = [sql.state_table(self.table_prefix, self.dialect)]
        for table in tables:
            names += [self.name(table), self.name(table + SHADOW_SUFFIX), self.name(table + PENDING_SUFFIX)]
        found = self.columns_of_tables(names)
        existing = [name for name in dict.fromkeys(self.name(table) for table in counted) if found.get(name)]
        if existing:  # (before anything is kept: a statement naming a table forgets what was read of it)
            rows = self.execute("COUNT ROWS", existing[0], sql.count_rows_of(existing, schema=self.schema))
            self._counted = {existing[n]: count for n, count in rows}
        self._prefetched = {name: found.get(name, {}) for name in names}

    # --- shared -------------------------------------------------------------------------------------------
    def name(self, name: str) -> str:
        """`name` as this warehouse stores it (case folding, length)."""
        return sql.rules(self.dialect).identifier(name)

    def execute(self, kind: str, table: str, statement: exp.Expr, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; a refusal becomes a WarehouseError naming table and statement."""
        if self._prefetched:  # what prepare() read of this table may change now
            self._prefetched.pop(table, None)
        if self._counted:
            self._counted.pop(table, None)
        try:
            return self.run_sql(self._render(statement), list(params))
        except self.driver_errors as err:
            raise WarehouseError(f"{kind} on table {self._named(table)} failed: {_first_line(err)}") from err

    def _named(self, table: str) -> str:
        """`table` as errors name it: in the schema, or as the session's own where staged() tables are temporary."""
        if self.staging_schema is None and table in (STAGING_TABLE, DELETES_TABLE):
            return f"{table} (the session's own staging table)"
        return f"{self.schema}.{table}"

    def _render(self, statement: exp.Expr) -> str:
        """The SQL text of `statement`, rendered once per statement object.

        A load runs the same statement objects batch after batch (its INSERT or MERGE, the state upsert), and
        sqlglot takes milliseconds to render a 40-column one. Keyed by identity, each entry holding its
        statement so that no other object can take its id; statements are never changed once built.
        """
        if self._rendered is None:
            self._rendered = {}
        found = self._rendered.get(id(statement))
        if found is not None and found[0] is statement:
            return found[1]
        text = sql.render(statement, self.dialect)
        if len(self._rendered) >= _RENDERED_MAX:  # one-off statements (DDL, reads) must not pile up
            self._rendered.clear()
        self._rendered[id(statement)] = (statement, text)
        return text

    def execute_ddl(self, statements: Sequence[tuple[str, str, exp.Expr]]) -> None:
        """Run (kind, table, statement) triples; callers pass DDL only."""
        for kind, table, statement in statements:
            self.execute(kind, table, statement)

    def ensure_schema(self) -> None:
        """CREATE SCHEMA only when it is missing: a role that may load an existing schema need not create one."""
        if not self.execute("READ SCHEMAS", self.schema, sql.schema_exists(self.dialect), (self.schema,)):
            self.execute("CREATE SCHEMA", self.schema, sql.create_schema(self.schema))

    def refused_too_long(self, err: WarehouseError) -> bool:
        """Whether the warehouse refused a statement because a value is longer than its column allows."""
        cause = err.__cause__
        return bool(self.too_long) and all(getattr(cause, key, None) == value for key, value in self.too_long.items())

    def prepared_count(self, table: str) -> int | None:
        """The rows prepare() counted in `table`, once, when no statement has touched it since; else None."""
        return self._counted.pop(table, None) if self._counted else None

    def alive(self) -> bool:
        """base.Destination.alive: one trivial query (a round trip, asked only after a stream's load failed)."""
        try:
            self.run_sql("SELECT 1", [])
        except self.driver_errors:
            return False
        return True

    def has_table(self, table: str) -> bool:
        """base.Destination.has_table: from what prepare() read when it read this table, else one read."""
        name = self.name(table)
        if self._prefetched and name in self._prefetched:
            return bool(self._prefetched[name])  # (left there for the load's begin())
        return bool(self.columns_of(name))

    def columns_of(self, table: str) -> dict[str, exp.DataType]:
        """The columns of `table` in order with their types; empty when the table does not exist."""
        if self._prefetched and table in self._prefetched:
            return self._prefetched.pop(table)
        rows = self.execute("READ COLUMNS", table, sql.table_columns(self.dialect), (self.schema, table))
        return {row[0]: self._reported_type(row[1], row[2], row[3]) for row in rows}

    def columns_of_tables(self, tables: Sequence[str]) -> dict[str, dict[str, exp.DataType]]:
        """columns_of() of each of `tables` that exists, in one query: each is a round trip, and a slow one on Snowflake."""
        if self._prefetched and all(table in self._prefetched for table in tables):
            return {table: columns for table in tables if (columns := self._prefetched.pop(table))}
        rows = self.execute("READ COLUMNS", tables[0], sql.tables_columns(len(tables), self.dialect), (self.schema, *tables))
        found: dict[str, dict[str, exp.DataType]] = {}
        # Where names match whatever their case, a table made as KL_x is the KL_x or kl_x asked for: keyed as asked.
        asked = {table.lower(): table for table in tables} if sql.rules(self.dialect).names_ignore_case else {}
        for table, column, *reported in rows:
            found.setdefault(asked.get(table.lower(), table), {})[column] = self._reported_type(*reported)
        return found

    def _reported_type(self, data_type: str, precision: int | None, scale: int | None) -> exp.DataType:
        # Parsed once per distinct type: a batch reads its table's columns, and sqlglot parses a type in ~50 µs.
        # Callers only read these (sql.cast_to copies the type it puts in a statement).
        if self._types_seen is None:
            self._types_seen = {}
        key = (data_type, precision, scale)
        found = self._types_seen.get(key)
        if found is None:
            found = self._types_seen[key] = sql.reported_type(data_type, precision, scale, self.dialect)
        return found

    def ensure_state_table(self) -> None:
        """CREATE the state table once per run (outside any transaction: DDL commits on some warehouses)."""
        if not self._state_table:
            table = sql.state_table(self.table_prefix, self.dialect)
            self.execute("CREATE TABLE", table, sql.create_state_table(self.table_prefix, self.dialect, schema=self.schema))
            self._state_table = True

    def read_state(self, stream: str) -> dict[str, Any] | None:
        """The state last saved for `stream`, or None.

        The first call reads every stream's state, in one query: a run asks for each stream's state as it
        plans, and each incremental load again as it begins, and on Snowflake each read was a round trip (18
        of a later run's 118 statements for all ten streams). Nothing but this destination writes the state
        table during a run (the lock); a state it has written since is read again, on its own.
        """
        table = sql.state_table(self.table_prefix, self.dialect)
        # Looked for once: a first run reads every stream's state before any load creates the table.
        if self._state_table is None:
            self._state_table = bool(self.columns_of(table))
        if not self._state_table:
            return None
        if self._states is None:
            self._states = dict(self.execute("READ STATE", table, sql.select_states(self.table_prefix, self.dialect, schema=self.schema)))
        if stream not in self._states:
            return None
        text = self._states[stream]
        if text is _WRITTEN:
            found = self.execute("READ STATE", table, sql.select_state(self.table_prefix, self.dialect, schema=self.schema), (stream,))
            if not found:
                return None
            text = found[0][0]
        return decode_state(text, stream=stream, table=f"{self.schema}.{table}")

    def count_rows(self, table: str) -> int:
        """How many rows `table` holds; 0 when it does not exist (the empty-refresh guard asks)."""
        table = self.name(table)
        if not self.columns_of(table):
            return 0
        [(count,)] = self.execute("COUNT ROWS", table, sql.count_rows(table, schema=self.schema))
        return count

    def save_state(self, stream: str, state: dict[str, Any]) -> None:
        """Upsert the state row of `stream`; runs inside the caller's transaction."""
        self.save_state_text(stream, json.dumps(state))

    def save_state_text(self, stream: str, text: str) -> None:
        """save_state with the state already as its JSON text."""
        table = sql.state_table(self.table_prefix, self.dialect)
        # Built once (sqlglot takes a millisecond or two), then run with each batch's parameters.
        depends = (self.table_prefix, self.dialect, self.schema, self.upsert_form)
        if self._state_upsert is None or self._state_upsert[0] != depends:
            statements = sql.upsert_state(self.table_prefix, self.dialect, schema=self.schema, form=self.upsert_form)
            self._state_upsert = (depends, [(s, len(sql.state_parameters(s, "", ""))) for s in statements])
        if self._states is not None:
            self._states[stream] = _WRITTEN
        for statement, count in self._state_upsert[1]:
            self.execute("STATE UPSERT", table, statement, (stream, text) * (count // 2))

    # --- operating klx: run history and state reset (engine/commands) ----------------------------------------
    def append_run(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append a run's rows (one per stream, in sql.RUNS_COLUMNS order) to <prefix>klx_runs, in one transaction."""
        runs = sql.runs_table(self.table_prefix, self.dialect)
        self.execute_ddl([("CREATE TABLE", runs, sql.create_runs_table(self.table_prefix, self.dialect, schema=self.schema))])
        with self.transaction():
            for row in rows:
                self.execute("INSERT RUN", runs, sql.insert_run_row(self.table_prefix, self.dialect, schema=self.schema), row)

    def read_runs(self, limit: int) -> list[dict[str, Any]]:
        """The rows of the newest `limit` runs, newest first; empty before the first run."""
        runs = sql.runs_table(self.table_prefix, self.dialect)
        if not self.columns_of(runs):
            return []
        found = self.execute("READ RUNS", runs, sql.select_runs(self.table_prefix, self.dialect, schema=self.schema), (limit,))
        return [dict(zip((c.name for c in sql.RUNS_COLUMNS), row)) for row in found]

    def delete_state(self, stream: str) -> None:
        """Forget `stream`'s saved state (cursors, column names): its next run starts from start_date."""
        table = sql.state_table(self.table_prefix, self.dialect)
        if self.columns_of(table):
            if self._states is not None:
                self._states[stream] = _WRITTEN
            with self.transaction():
                self.execute("DELETE STATE", table, sql.delete_state(self.table_prefix, self.dialect, schema=self.schema), (stream,))

    def begin(self, stream: str, table: TableSpec, *, replace: bool) -> SqlLoad:
        """Start loading `stream` into `table`; with replace=True rows go to a shadow table swapped in by finish()."""
        return SqlLoad(self, stream, table, replace=replace)


def _first_line(err: BaseException) -> str:
    """A driver's message on one line, without the context some drivers append (LINE 1: …, caret lines).

    A first line ending in ':' (Snowflake's "SQL compilation error:") keeps the line that says what.
    """
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return " ".join(lines[:2]) if lines[0].endswith(":") and len(lines) > 1 else lines[0]
