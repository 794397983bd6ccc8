"""Test warehouses: DuckDB in a temporary file, PostgreSQL on 127.0.0.1:5432 in a schema of its own per test."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from engine.destinations.warehouse import SqlDestination

POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}


def postgres_missing() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when a server answers on 127.0.0.1:5432."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with socket.create_connection((POSTGRES["host"], POSTGRES["port"]), timeout=1):
            return None
    except OSError:
        return "no PostgreSQL answers on 127.0.0.1:5432 (.ci/run starts one)"


def require_postgres() -> None:
    """Skip when no server answers; under CI=true that is a failure, since .ci/run starts one."""
    reason = postgres_missing()
    if reason and os.environ.get("CI") == "true":
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema name, dropped with everything in it after the test."""
    require_postgres()
    import psycopg

    name = f"klx_test_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(**POSTGRES, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@dataclass
class Warehouse:
    """A destination plus raw access to its database, for setting up and reading back tables."""

    kind: str
    dest: SqlDestination

    def run(self, text: str) -> None:
        """Run setup SQL in the destination's schema (table names unqualified)."""
        if self.kind == "duckdb":
            self.dest.connection.execute(f'SET schema = \'{self.dest.schema}\'')
            self.dest.connection.execute(text)
        else:
            self.dest.connection.execute(f'SET search_path TO "{self.dest.schema}"')
            self.dest.connection.execute(text)

    def query(self, text: str) -> list[dict[str, Any]]:
        """Rows of a query in the destination's schema, as dicts."""
        if self.kind == "duckdb":
            self.dest.connection.execute(f"SET schema = '{self.dest.schema}'")
            return self.dest.connection.sql(text).to_arrow_table().to_pylist()
        from psycopg.rows import dict_row

        self.dest.connection.execute(f'SET search_path TO "{self.dest.schema}"')
        with self.dest.connection.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(text).fetchall()

    def types(self, table: str) -> dict[str, str]:
        """Column name -> type as the warehouse reports it."""
        return {name: dtype.sql(self.dest.dialect) for name, dtype in self.dest.columns_of(table).items()}


def open_warehouse(kind: str, tmp_path: Path, schema: str | None, prefix: str = "kl_") -> Warehouse:
    """A connected destination of `kind` (schema: the PostgreSQL schema to use)."""
    if kind == "duckdb":
        from engine.destinations.duckdb import DuckDBDestination

        return Warehouse(kind, DuckDBDestination(path=str(tmp_path / "warehouse.duckdb"), table_prefix=prefix))
    from engine.destinations.postgres import PostgresDestination

    connection = {k: v for k, v in POSTGRES.items()}
    return Warehouse(kind, PostgresDestination(connection=connection, dsn=None, schema=schema or "public", table_prefix=prefix))


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """The same test on DuckDB and on PostgreSQL."""
    schema = request.getfixturevalue("pg_schema") if request.param == "postgres" else None
    opened = open_warehouse(request.param, tmp_path, schema)
    yield opened
    opened.dest.close()
