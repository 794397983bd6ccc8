"""Benchmark (run by hand, not a test): what one batch's load costs as the table it goes into grows.

    python bench/key_matching.py --rows 1000000 --batch 2000

Every batch of a load is matched against the table's keys before it goes in (SqlLoad._load: one query says
whether any key is already there; a MERGE follows only when one is). DuckDB 2.0 answers that query by scanning
the table's whole key column (and cursor column): the hash join pushes a probabilistic filter of the batch's
keys into the scan ("Dynamic Filters: optional: id IN PRF(id)", "Row Groups Scanned: 9 / 9" in EXPLAIN
ANALYZE), not a range, so no row group is skipped even when keys grow with load order. A batch costs time in
proportion to the rows already loaded, and a load the square of its size.

Since session 7 a full refresh skips that query (its shadow table is read by nobody before the swap): its
batches go in unmatched, and finish() resolves the keys written more than once with one aggregate over the
key columns (SqlLoad._resolve_repeats). Since session 8 so does an incremental load into an empty table (a
first sync), its state saying the keys are unresolved until finish(); and an incremental load into a table
of 250,000 rows or more (a later run; DuckDBDestination.gather_from, 0 here) gathers its batches in <table>__klx_pending
and merges them every 100,000 rows:
one match of the table's keys per merge rather than per batch.

Batches of event-shaped rows (key, cursor, three text columns, uuid_ts) go through DuckDBDestination.write():
into a full refresh (replace=True, loaded_at=uuid_ts), an incremental first sync and a later run (loaded_at=
uuid_ts; the later run's table holds one row before it), and an incremental load that matches every batch
(loaded_at=None: every batch of a later run before session 8), keys random (their order does not change the
scan, above); printed per table size reached: milliseconds of wall and CPU per batch (the mean of the last
100 batches before that size, so a later run's merges count), and what each finish() took.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.destinations.duckdb import DuckDBDestination  # noqa: E402
from engine.schema import ARROW_TYPES, Column, ColumnType, TableSpec  # noqa: E402

COLUMNS = [
    Column(name="id", type=ColumnType.TEXT),
    Column(name="datetime", type=ColumnType.TIMESTAMP),
    Column(name="metric_id", type=ColumnType.TEXT),
    Column(name="profile_id", type=ColumnType.TEXT),
    Column(name="uuid", type=ColumnType.TEXT),
    Column(name="uuid_ts", type=ColumnType.TIMESTAMP),
]
TABLE = TableSpec(name="bench_events", primary_key=("id",), cursor="datetime", loaded_at="uuid_ts")
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as ULIDs


def key(rnd: random.Random) -> str:
    """A random 26-character ULID-like id."""
    return "".join(rnd.choice(ALPHABET) for _ in range(26))


def batch(start: int, size: int, rnd: random.Random) -> pa.Table:
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    rows = {
        "id": [key(rnd) for _ in range(size)],
        "datetime": [base + timedelta(seconds=start + i) for i in range(size)],
        "metric_id": ["RESQ6t"] * size,
        "profile_id": [key(rnd) for _ in range(size)],
        "uuid": [f"{rnd.getrandbits(128):032x}" for _ in range(size)],
        "uuid_ts": [base + timedelta(days=1, microseconds=start)] * size,  # grows batch by batch, as a run's
    }
    return pa.table({c.name: pa.array(rows[c.name], ARROW_TYPES[c.type]) for c in COLUMNS})


MODES = {  # heading: (replace, table, whether the table holds a row before the load)
    "full refresh": (True, TABLE, False),
    "first sync": (False, TABLE, False),
    "later run": (False, TABLE, True),
    "matched": (False, TableSpec(name=TABLE.name, primary_key=TABLE.primary_key, cursor=TABLE.cursor), False),
}
WINDOW = 100  # batches averaged before each mark: a later run merges its gathered rows every 50 (100,000 rows)


def load(rows: int, size: int, mode: str, marks: list[int], work: Path) -> tuple[dict[int, tuple[float, float]], float]:
    """Per mark (rows in the table): mean (wall ms, CPU ms) of the WINDOW batches written before it; finish()'s wall ms."""
    replace, table, held = MODES[mode]
    dest = DuckDBDestination(path=str(work / f"keys-{mode}.duckdb"), table_prefix="bench_")
    rnd = random.Random(0)
    if held:  # one earlier run's row: this load is a later one
        earlier = dest.begin("events", table, replace=False)
        earlier.write(batch(-1, 1, rnd), COLUMNS, {})
        earlier.finish({})
    load = dest.begin("events", table, replace=replace)
    timings: list[tuple[float, float]] = []
    found: dict[int, tuple[float, float]] = {}
    written = 0
    while written < rows:
        data = batch(written, size, rnd)
        began, cpu = time.perf_counter(), time.process_time()
        load.write(data, COLUMNS, {})
        timings.append(((time.perf_counter() - began) * 1e3, (time.process_time() - cpu) * 1e3))
        written += size
        for mark in marks:
            if mark not in found and written >= mark:
                last = timings[-WINDOW:]
                found[mark] = (statistics.mean(t[0] for t in last), statistics.mean(t[1] for t in last))
    began = time.perf_counter()
    load.finish({})
    finished = (time.perf_counter() - began) * 1e3
    dest.close()
    return found, finished


def main() -> int:
    DuckDBDestination.gather_from = 0  # the later run gathers from its first batch, to show gathering's cost at every size
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=2000, help="rows a batch (events: about 2,000 fill BATCH_BYTES)")
    args = parser.parse_args()
    marks = [m for m in (100_000, 250_000, 500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000) if m <= args.rows]
    with tempfile.TemporaryDirectory() as tmp:
        results = {mode: load(args.rows, args.batch, mode, marks, Path(tmp)) for mode in MODES}
    print(f"batches of {args.batch:,} rows, random keys; ms per batch (mean of the {WINDOW} before each size)")
    print(f"{'rows in table':>14}" + "".join(f"  {mode:>24}" for mode in MODES))
    for mark in marks:
        cells = [f"{results[m][0][mark][0]:7.1f} wall {results[m][0][mark][1]:7.1f} CPU" for m in MODES]
        print(f"{mark:>14,}" + "".join(f"  {cell:>24}" for cell in cells))
    print("finish(): " + ", ".join(f"{mode} {results[mode][1]:,.0f} ms" for mode in MODES) + " (resolving repeated keys or merging; a full refresh's swap)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
