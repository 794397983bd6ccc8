"""Benchmark (run by hand, not a test): rows/s each SQL destination loads, batch after batch, upsert and state included.

    python bench/warehouses.py --rows 50000 --batch 5000 --repeat 3

Profile-shaped batches (key, cursor, text, number, JSON and the load columns) go through the destination's own
write() twice: first as inserts into an empty table, then as updates of the same keys with newer cursors.
DuckDB in a temporary file; PostgreSQL in a throwaway schema on 127.0.0.1:5432 (skipped when none answers);
Snowflake on fakesnow (skipped when not installed; an emulation, so its figure says little about Snowflake).
Each figure is the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.schema import ARROW_TYPES, Column, ColumnType, TableSpec  # noqa: E402

COLUMNS = [
    Column(name="id", type=ColumnType.TEXT),
    Column(name="updated", type=ColumnType.TIMESTAMP),
    Column(name="email", type=ColumnType.TEXT),
    Column(name="score", type=ColumnType.DOUBLE),
    Column(name="properties", type=ColumnType.JSON),
    Column(name="received_at", type=ColumnType.TIMESTAMP),
]
TABLE = TableSpec(name="bench_profiles", primary_key=("id",), cursor="updated")


def batches(rows: int, size: int, day: int) -> list[pa.Table]:
    """`rows` profile rows in batches of `size`; `day` moves every cursor."""
    when = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=day)
    schema = pa.schema([(c.name, ARROW_TYPES[c.type]) for c in COLUMNS])
    out = []
    for start in range(0, rows, size):
        data = [
            {"id": f"p{i:08d}", "updated": when, "email": f"p{i}@example.com", "score": i / 7,
             "properties": json.dumps({"plan": "pro", "n": i}), "received_at": when}
            for i in range(start, min(rows, start + size))
        ]
        out.append(pa.Table.from_pylist(data, schema=schema))
    return out


def load(dest: Any, data: list[pa.Table]) -> float:
    """Seconds to write every batch and finish."""
    began = time.perf_counter()
    run = dest.begin("bench", TABLE, replace=False)
    for batch in data:
        run.write(batch, COLUMNS, {"cursor": {}})
    run.finish({"cursor": {}})
    return time.perf_counter() - began


@contextlib.contextmanager
def duckdb_destination() -> Iterator[Any]:
    from engine.destinations.duckdb import DuckDBDestination

    with tempfile.TemporaryDirectory() as folder:
        dest = DuckDBDestination(path=str(Path(folder) / "bench.duckdb"))
        yield dest
        dest.close()


@contextlib.contextmanager
def postgres_destination() -> Iterator[Any]:
    import psycopg

    from engine.destinations.postgres import PostgresDestination

    connection = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
    schema = f"klx_bench_{uuid.uuid4().hex[:8]}"
    dest = PostgresDestination(connection=connection, dsn=None, schema=schema)
    try:
        yield dest
    finally:
        dest.close()
        with psycopg.connect(**connection, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def snowflake_destination() -> Iterator[Any]:
    import fakesnow

    from engine.destinations.snowflake import SnowflakeDestination

    with fakesnow.patch():
        dest = SnowflakeDestination(connection={"account": "bench", "user": "bench", "password": "x", "database": "BENCH"}, schema="klaviyo")
        yield dest
        dest.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    inserts, updates = batches(args.rows, args.batch, 0), batches(args.rows, args.batch, 1)
    targets: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
        "duckdb": duckdb_destination, "postgres": postgres_destination, "snowflake (fakesnow)": snowflake_destination,
    }
    print(f"{args.rows} rows in batches of {args.batch}, best of {args.repeat}")
    for name, opened in targets.items():
        best_insert = best_update = float("inf")
        try:
            for _ in range(args.repeat):
                with opened() as dest:
                    best_insert = min(best_insert, load(dest, inserts))
                    best_update = min(best_update, load(dest, updates))
        except Exception as err:  # a missing server or driver skips that destination
            print(f"{name:22} skipped: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            continue
        print(f"{name:22} insert {args.rows / best_insert:10,.0f} rows/s   update {args.rows / best_update:10,.0f} rows/s")


if __name__ == "__main__":
    main()
