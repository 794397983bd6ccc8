"""The embedded default destination: one DuckDB file (or :memory:)."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import pyarrow as pa
from sqlglot import exp

from engine import sql
from engine.destinations import DestinationConfig, check_options, config_relative, destination, option_where
from engine.schema import Column, ColumnType, TableSpec
from engine.errors import ConfigError, WarehouseError
from engine.state import decode_state

if TYPE_CHECKING:
    import duckdb

DIALECT = "duckdb"
SHADOW_SUFFIX = "__klx_shadow"  # replace loads fill <table>__klx_shadow, then swap it in
_BATCH_VIEW = "__klx_batch"  # the Arrow batch, registered as a view for the MERGE to read
_DELETES_VIEW = "__klx_deletes"  # keys to delete, registered for the DELETE to read


@destination("duckdb")
class DuckDBDestination:
    """A DuckDB database; tables live in `schema`, state in <prefix>klx_state."""

    dialect = DIALECT

    def __init__(self, *, path: str, schema: str = "main", table_prefix: str = "") -> None:
        import duckdb  # only a DuckDB run pays for the driver

        self._duckdb = duckdb
        self.path = path
        self.schema = schema
        self.table_prefix = table_prefix
        try:
            self._con = duckdb.connect(path)
        except duckdb.Error as err:
            raise WarehouseError(
                f"cannot open DuckDB database {path!r}: {err}", hint="check destination.path: its folder must exist and be writable"
            ) from err
        self.execute("CREATE SCHEMA", schema, sql.create_schema(schema))

    @classmethod
    def from_config(cls, config: DestinationConfig) -> DuckDBDestination:
        """Validate `path` (required) and `schema` (default main), then connect."""
        check_options(config, allowed=("path", "schema"), required=("path",))
        for key in ("path", "schema"):
            if key in config.options and not isinstance(config.options[key], str):
                raise ConfigError(f"destination.{key}: must be a string", where=option_where(config, key))
        path = config.options["path"]
        return cls(
            # ":memory:" and "md:" (MotherDuck) name no file.
            path=path if path.startswith((":memory:", "md:")) else config_relative(config, path),
            schema=config.options.get("schema", "main"),
            table_prefix=config.table_prefix,
        )

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The open connection, for reading loaded tables (run summaries, tests)."""
        return self._con

    def execute(self, kind: str, table: str, statement: exp.Expr, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and fetch its rows; a refusal becomes a WarehouseError naming table and statement."""
        try:
            return self._con.execute(sql.render(statement, DIALECT), list(params)).fetchall()
        except self._duckdb.Error as err:
            raise WarehouseError(f"{kind} on table {self.schema}.{table} failed: {err}") from err

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

    @contextlib.contextmanager
    def registered(self, batch: pa.Table, name: str = _BATCH_VIEW) -> Iterator[str]:
        """`batch` as a view named by the yielded name, for one statement to read in bulk."""
        self._con.register(name, batch)
        try:
            yield name
        finally:
            self._con.unregister(name)

    def rollback(self) -> None:
        """Roll back the open transaction, if any."""
        with contextlib.suppress(self._duckdb.TransactionException):
            self._con.rollback()

    def columns_of(self, table: str) -> dict[str, exp.DataType]:
        """The columns of `table` in order with their types; empty when the table does not exist."""
        rows = self.execute("READ COLUMNS", table, sql.table_columns(), (self.schema, table))
        return {name: exp.DataType.build(dtype, dialect=DIALECT) for name, dtype in rows}

    def read_state(self, stream: str) -> dict[str, Any] | None:
        """The state last saved for `stream`, or None."""
        state_table = self.table_prefix + sql.STATE_TABLE
        if not self.columns_of(state_table):
            return None
        query = sql.select_state(self.table_prefix, schema=self.schema)
        found = self.execute("READ STATE", state_table, query, (stream,))
        return decode_state(found[0][0], stream=stream, table=f"{self.schema}.{state_table}") if found else None

    def count_rows(self, table: str) -> int:
        """How many rows `table` holds; 0 when it does not exist."""
        if not self.columns_of(table):
            return 0
        [(count,)] = self.execute("COUNT ROWS", table, sql.count_rows(table, schema=self.schema))
        return count

    def save_state(self, stream: str, state: dict[str, Any]) -> None:
        """Upsert the state row of `stream`; runs inside the caller's transaction."""
        state_table = self.table_prefix + sql.STATE_TABLE
        create = sql.create_state_table(self.table_prefix, DIALECT, schema=self.schema)
        self.execute("CREATE TABLE", state_table, create)
        upsert = sql.upsert_state(self.table_prefix, DIALECT, schema=self.schema)
        self.execute("STATE UPSERT", state_table, upsert, (stream, json.dumps(state)))

    def begin(self, stream: str, table: TableSpec, *, replace: bool) -> DuckDBLoad:
        """Start loading `stream` into `table`; with replace=True rows go to a shadow table swapped in by finish()."""
        return DuckDBLoad(self, stream, table, replace=replace)

    def close(self) -> None:
        """Release the connection."""
        self._con.close()


class DuckDBLoad:
    """One stream's load; see base.TableLoad."""

    def __init__(self, dest: DuckDBDestination, stream: str, table: TableSpec, *, replace: bool) -> None:
        self._dest = dest
        self._stream = stream
        self._table = table
        self._replace = replace
        self._into = table.name + SHADOW_SUFFIX if replace else table.name
        self._columns: list[Column] = []
        schema = dest.schema
        if replace:
            dest.execute("DROP TABLE", self._into, sql.drop_table(self._into, schema=schema))  # a crashed run's
            if dest.columns_of(table.name):
                # The shadow starts with every column of the target, so no column disappears on swap.
                like = sql.create_table_like(self._into, table.name, schema=schema)
                dest.execute("CREATE TABLE", self._into, like)

    def write(self, batch: pa.Table, columns: Sequence[Column], state: dict[str, Any], deletes: pa.Table | None = None) -> None:
        """Evolve the table to `columns`, MERGE `batch` on the key, DELETE `deletes` and save `state`, in one transaction."""
        known = {c.name for c in columns}
        unknown = [name for name in batch.column_names if name not in known]
        needed = [*self._table.primary_key, *([self._table.cursor] if self._table.cursor else [])]
        missing = [name for name in needed if name not in batch.column_names]
        if unknown or missing:
            name = self._table.name
            raise ValueError(f"batch for {name}: columns {unknown} not declared, key or cursor {missing} absent")
        self._columns = list(columns)
        dest = self._dest
        staged = batch.append_column(sql.SEQ_COLUMN, pa.array(range(batch.num_rows), pa.int64()))
        gone = deletes if deletes is not None and deletes.num_rows else None
        # Registered outside the transaction: an aborted transaction refuses to unregister it.
        with dest.registered(staged) as view, dest.registered(gone or batch, _DELETES_VIEW) as keys, dest.transaction():
            types = self._evolve(batch, columns)
            if batch.num_rows:
                self._merge(view, [Column(name=n, type=types[n]) for n in batch.column_names])
            if gone is not None and self._table.primary_key:
                delete = sql.delete_keys(self._into, keys, self._table.primary_key, schema=dest.schema)
                dest.execute("DELETE", self._into, delete)
            dest.save_state(self._stream, state)

    def finish(self, state: dict[str, Any]) -> None:
        """Make the load visible (a replace swaps the shadow in) and save `state`, in one transaction."""
        dest, name, schema = self._dest, self._table.name, self._dest.schema
        with dest.transaction():
            if self._replace and dest.columns_of(self._into):
                dest.execute("DROP TABLE", name, sql.drop_table(name, schema=schema))
                dest.execute("RENAME TABLE", self._into, sql.rename_table(self._into, name, schema=schema))
            elif self._columns and not dest.columns_of(name):
                dest.execute("CREATE TABLE", name, sql.create_table(name, self._columns, DIALECT, schema=schema))
            dest.save_state(self._stream, state)

    def abort(self) -> None:
        """Roll back anything open and drop the shadow; the target table is left as it was."""
        self._dest.rollback()
        if self._replace:
            self._dest.execute("DROP TABLE", self._into, sql.drop_table(self._into, schema=self._dest.schema))

    def _evolve(self, batch: pa.Table, columns: Sequence[Column]) -> dict[str, ColumnType]:
        """Create the table or add and widen its columns; the type each column now has."""
        dest, into, schema = self._dest, self._into, self._dest.schema
        existing = dest.columns_of(into)
        if not existing:
            dest.execute("CREATE TABLE", into, sql.create_table(into, columns, DIALECT, schema=schema))
            return {c.name: c.type for c in columns}
        types: dict[str, ColumnType] = {}
        for column in columns:
            if column.name not in existing:
                dest.execute("ADD COLUMN", into, sql.add_column(into, column, DIALECT, schema=schema))
                types[column.name] = column.type
                continue
            current = sql.column_type_of(existing[column.name], DIALECT)
            if current is None:
                found = existing[column.name].sql(DIALECT)
                raise WarehouseError(
                    f"column {column.name!r} of table {schema}.{into} has type {found}, which klx does not create",
                    hint="drop the column or the table and sync again",
                )
            wanted = self._wanted_type(batch, column, current)
            if wanted is not current:
                change = Column(name=column.name, type=wanted)
                dest.execute("ALTER COLUMN TYPE", into, sql.alter_column_type(into, change, DIALECT, schema=schema))
            types[column.name] = wanted
        return types

    def _wanted_type(self, batch: pa.Table, column: Column, current: ColumnType) -> ColumnType:
        """Types only widen, except that a column holding no values yet takes the batch's type."""
        if column.type is current:
            return current
        if column.name not in batch.column_names or batch.column(column.name).null_count == batch.num_rows:
            return current  # a batch without values says nothing about the type
        count = sql.count_values(self._into, column.name, schema=self._dest.schema)
        [(values,)] = self._dest.execute("COUNT VALUES", self._into, count)
        return column.type if values == 0 else sql.widest(current, column.type)

    def _merge(self, view: str, columns: list[Column]) -> None:
        """MERGE the registered batch `view` into the table, newest cursor per key."""
        dest, table, names = self._dest, self._table, [c.name for c in columns]
        rows = sql.staged_rows(view, columns, table.primary_key, table.cursor, DIALECT)
        if table.primary_key:
            merge = sql.merge(self._into, rows, names, table.primary_key, table.cursor, schema=dest.schema)
            dest.execute("MERGE", self._into, merge)
        else:
            dest.execute("INSERT", self._into, sql.append(self._into, rows, names, schema=dest.schema))
