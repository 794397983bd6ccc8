"""`klx sql`: the DDL, insert, upsert and state statements a first run executes (and later runs' upserts), in the configured or any dialect.

The statements come from the same loader a run uses (engine/destinations/table_load.py), talking to a
destination that records instead of executing: what is printed is what runs.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO

import pyarrow as pa
from sqlglot import exp

from ..dialects import DIALECTS
from ..destinations import DESTINATIONS
from ..destinations.warehouse import STAGING_TABLE, SqlDestination
from ..errors import JSON_TEXT_CHARS, ConfigError, json_line
from ..plan import StreamPlan, build_plan
from ..rows import LOAD_COLUMNS, LOAD_ORDER, ColumnMap
from ..schema import ARROW_TYPES, Column, ColumnType, TableSpec
from ..spec import Spec
from ..sql import create_schema, render
from . import config_without_secrets

DEFAULT_SCHEMA = {"duckdb": "main", "postgres": "public", "snowflake": "PUBLIC"}
_READS = ("READ", "COUNT")  # what a run asks the warehouse; not printed


class RecordingDestination(SqlDestination):
    """A destination with no tables that records every statement the loader sends instead of running it."""

    def __init__(self, dialect: str, schema: str | None, table_prefix: str) -> None:
        self.dialect = dialect
        # From the destination of this dialect's name, where there is one: the rows from which a later run gathers.
        self._kind: type[SqlDestination] = DESTINATIONS.get(dialect, SqlDestination)  # type: ignore[assignment]
        self.gather_from = getattr(self._kind, "gather_from", SqlDestination.gather_from)
        self.schema = self.name(schema) if schema else schema  # type: ignore[assignment]
        self.table_prefix = table_prefix
        self.statements: list[exp.Expr] = []
        self.tables: dict[str, dict[str, exp.DataType]] = {}  # what the recorded statements created
        self._stage_shown = False
        if self.schema:
            self.statements.append(create_schema(self.schema))

    def execute(self, kind: str, table: str, statement: exp.Expr, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Record `statement`. Reads find nothing; a table the recorded statements created holds enough rows for
        a later run to gather its batches; the preview's batches repeat their key, so the statements resolving
        repeated keys show."""
        if kind.startswith(_READS):
            held = self.gather_from if table in self.tables else 0  # a later run's table: as many as gathering takes
            answers = {"COUNT ROWS": [(held,)], "COUNT REPEATED KEYS": [(1,)], "COUNT SUPERSEDED": [(0, 0)],
                       "COUNT PENDING": [(0, 0)]}
            return answers.get(kind, [(0,)] if kind.startswith("COUNT") else [])
        self.statements.append(statement)
        if isinstance(statement, exp.Create) and isinstance(statement.this, exp.Schema):
            defs = statement.this.expressions
            self.tables[statement.this.this.name] = {d.name: d.args["kind"] for d in defs if isinstance(d, exp.ColumnDef)}
        elif isinstance(statement, exp.Alter) and isinstance(rename := statement.args["actions"][0], exp.AlterRename):
            self.tables[rename.this.name] = self.tables.pop(statement.this.name, {})
        elif isinstance(statement, exp.Drop) and statement.args.get("kind") == "TABLE":
            self.tables.pop(statement.args["tables"][0].name, None)
        return []

    def columns_of(self, table: str) -> dict[str, exp.DataType]:
        """The columns the recorded statements gave `table`."""
        return dict(self.tables.get(table, {}))

    def columns_of_tables(self, tables: Sequence[str]) -> dict[str, dict[str, exp.DataType]]:
        """columns_of() of each of `tables` the recorded statements created."""
        return {table: self.columns_of(table) for table in tables if table in self.tables}

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN … COMMIT, shown as such."""
        self.statements.append(exp.Transaction())
        yield
        self.statements.append(exp.Commit())

    def rollback(self) -> None:
        """Nothing ran, nothing to undo."""

    @contextlib.contextmanager
    def staged(self, batch: pa.Table, columns: Sequence[Column], name: str = STAGING_TABLE) -> Iterator[str]:
        """The batch's staging table, by name: each destination fills it its own bulk way (view, COPY, PUT + COPY).

        Where the destination stages into a table of the schema (Snowflake: PUT and COPY INTO), those statements are
        shown as a run sends them (SqlDestination.preview_staging); elsewhere a temporary table or view of the
        session, by its bare name."""
        declared = {c.name: c for c in columns}
        staged = [declared.get(n, Column(name=n, type=ColumnType.BIGINT)) for n in batch.column_names]
        found = self._kind.preview_staging(self.schema, self.table_prefix, staged, name, first=not self._stage_shown) if self.schema else None
        if found is None:
            yield name
            return
        table, statements = found
        self.staging_schema = self.schema  # the upsert reads the staging table there, as the destination's does
        self._stage_shown = True
        self.statements += statements
        yield table

    def close(self) -> None:
        """Nothing to release."""


def preview_load(dest: SqlDestination, stream_plan: StreamPlan, *, later: bool = False) -> None:
    """The loads `klx sql` shows, sent to `dest`: a first run's two batches, or (`later`) a later incremental run's one.

    A first run (an empty table, or a full refresh's shadow) INSERTs its batches, one row per key, without matching
    them against the rows before them, and resolves the keys repeated across batches at the end; a later run into a
    table holding rows gathers its batch beside the table, then merges it.
    """
    stream = stream_plan.stream
    names = ColumnMap(None, reserved=LOAD_COLUMNS)
    key = tuple(names.name((k,)) for k in stream.primary_key)
    cursor = names.name(tuple(stream.cursor.field.split("."))) if stream.cursor else None
    newest = names.name(tuple(stream.merge_cursor.split("."))) if stream.merge_cursor else None  # spec newest_by, or the cursor
    # The load columns first, as a run's tables start with them (rows.RowBuilder), then key and cursor.
    columns = [Column(name=n, type=t) for n, t in LOAD_COLUMNS.items()]
    columns += [Column(name=k, type=ColumnType.TEXT) for k in key]
    for name in dict.fromkeys(c for c in (cursor, newest) if c and c not in key):
        columns.append(Column(name=name, type=ColumnType.TIMESTAMP))
    table = TableSpec(name=stream_plan.table, primary_key=key, cursor=newest, loaded_at=LOAD_ORDER)
    schema = pa.schema([(c.name, ARROW_TYPES[c.type]) for c in columns])
    stamps = iter(datetime(2000, 1, 1, second=n, tzinfo=timezone.utc) for n in range(3 if later else 0, 5))  # each batch's LOAD_ORDER

    def row() -> pa.Table:
        return pa.Table.from_pylist([{LOAD_ORDER: next(stamps)}], schema=schema)

    load = dest.begin(stream.name, table, replace=not later and stream_plan.mode == "full_refresh")
    if not later:
        load.write(row(), columns, {})
    load.write(pa.concat_tables([row(), row()]), columns, {})
    load.finish({})


def statements(config_path: Path, *, dialect: str | None = None, only: tuple[str, ...] = ()) -> tuple[str, list[tuple[str, list[exp.Expr]]]]:
    """(dialect, [(stream heading, statements)]) of a first run of `config_path`."""
    config = config_without_secrets(config_path)
    dialect = dialect or config.destination.type
    if dialect not in DIALECTS:
        raise ConfigError(f"--dialect: unknown {dialect!r}; known: {', '.join(sorted(DIALECTS))}")
    spec = Spec.from_yaml(config.source.spec)
    plan = build_plan(config, spec, {}, datetime.now(timezone.utc), only=only)
    schema = config.destination.options.get("schema") or DEFAULT_SCHEMA.get(dialect)
    dest = RecordingDestination(dialect, schema, config.destination.table_prefix)
    out = [("schema", list(dest.statements))] if dest.statements else []
    for stream_plan in plan.streams:
        dest.statements = []
        preview_load(dest, stream_plan)
        out.append((f"{stream_plan.stream.name} ({stream_plan.mode}) -> {dest.name(stream_plan.table)}", dest.statements))  # as the warehouse names it
        if stream_plan.mode != "full_refresh":  # a later incremental run gathers its batches beside the table holding rows, then merges them
            dest.statements = []
            preview_load(dest, stream_plan, later=True)
            out.append((f"{stream_plan.stream.name}: later runs into {dest.gather_from:,}+ rows gather batches in a pending table, then merge them "
                        "(smaller tables: each batch matched as it is written)", dest.statements))
    return dialect, out


def print_sql(
    config_path: Path, *, dialect: str | None = None, only: tuple[str, ...] = (), as_json: bool = False, file: TextIO | None = None
) -> int:
    """Print what a first run executes (to stdout by default), with --log-format json a statement a line; exit 0."""
    file = file or sys.stdout
    dialect, streams = statements(config_path, dialect=dialect, only=only)
    if as_json:
        for heading, stream_statements in streams:
            for statement in stream_statements:
                # Whole, on one line: a statement cut at the usual text limit would not run.
                sql = render(statement, dialect)
                print(json_line("statement", dialect=dialect, section=heading, sql=sql, text_chars=max(len(sql), JSON_TEXT_CHARS)), file=file)
        return 0
    print(f"-- klx sql: the statements a first run of {config_path} executes on {dialect}, and later runs' upserts.", file=file)
    staging = "PUT and COPY INTO fill each batch's staging table, as shown" if dialect == "snowflake" else "the batch is bulk-loaded into __klx_batch first"
    print(f"-- Values travel as bound parameters (? or %s); {staging}.", file=file)
    print("-- Columns found in the records are added to CREATE TABLE, or by ALTER TABLE ... ADD on later runs.", file=file)
    for heading, stream_statements in streams:
        print(f"\n-- {heading}", file=file)
        for statement in stream_statements:
            print(render(statement, dialect, pretty=True) + ";", file=file)
    return 0
