"""Benchmark (run by hand, not a test): instructions per record of the Python stages, counted by valgrind.

    python bench/instructions.py --stream events --pages 6
    python bench/instructions.py --stream events --pages 6 --klx /path/to/other/checkout   # the same pages, other code

Timings on a shared two-core machine move by 10-20% from one run to the next, more than most single changes
save. Instructions do not: valgrind (cachegrind, no cache simulation) counts what the process executes, the
same on every run of the same code and pages. The pages are captured from the simulator once (bench/engine.py's
capture, at --scale), then read three ways under valgrind: parse only; parse and records (normalised,
newest cursor, filter, key check); parse, records and rows (the column lists and Arrow batches of
--batch-rows). Each way runs again with no page, and the difference per record is printed: imports and set-up
cancel out. DuckDB is not counted (its threads are not the Python stages, and valgrind would take minutes).

--klx runs another checkout's engine (same pages, same specs/klaviyo.yaml of that checkout), for before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("parse", "records", "rows")


def replay(pages_file: Path, stream_name: str, pages: int, stage: str, batch_rows: int) -> int:
    """Read the first `pages` captured pages through the stages up to `stage`; the records kept."""
    from datetime import datetime, timezone

    from engine import collection
    from engine.bodies import body_parser
    from engine.http import parse_body
    from engine.records import RecordReader, Rejected
    from engine.rows import LOAD_COLUMNS, ColumnMap, RowBuilder
    from engine.spec import Spec

    bodies = pickle.loads(pages_file.read_bytes())[:pages]
    spec = Spec.from_yaml(Path(sys.path[0]) / "specs" / "klaviyo.yaml")
    collection.pace()  # as run() does
    parse = body_parser(spec.api, parse_body)
    reader = RecordReader(spec.api, spec.streams[stream_name])
    rows = RowBuilder(ColumnMap(None, reserved=LOAD_COLUMNS), spec.api.flatten_depth)
    received = datetime(2026, 1, 1, tzinfo=timezone.utc)
    load = {"uuid_ts": received, "context_sources_job_run_id": "bench", "context_sources_task_run_id": "bench"}
    kept = 0
    for body in map(parse, bodies):
        if stage == "parse":
            continue
        records = list(reader.records(body, reader.page_records(body, "replay"), {}))
        if hasattr(reader, "newest"):  # as StreamSync._read_page moves the cursor (older checkouts: record by record)
            reader.newest(records)
        else:
            [reader.cursor_value(r) for r in records if not isinstance(r, Rejected)]
        for record in records:
            if isinstance(record, Rejected) or not reader.keep(record) or reader.key_problem(record) is not None:
                continue
            kept += 1
            if stage == "rows":
                rows.add(record, received)
                if len(rows) >= batch_rows:
                    rows.take(load)
    if stage == "rows" and len(rows):
        rows.take(load)
    return kept


def count(klx: Path, pages_file: Path, stream: str, pages: int, stage: str, batch_rows: int) -> tuple[int, int]:
    """(instructions, records kept) of one replay under valgrind."""
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
               sys.executable, str(Path(__file__).resolve()), "--replay", str(pages_file), "--klx", str(klx),
               "--stream", stream, "--pages", str(pages), "--stage", stage, "--batch-rows", str(batch_rows)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    refs = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    kept = re.search(r"^kept (\d+)$", done.stdout, re.MULTILINE)
    if done.returncode or not refs or not kept:
        raise SystemExit(f"valgrind run failed ({stage}, {pages} pages):\n{done.stderr[-2000:]}")
    return int(refs.group(1).replace(",", "")), int(kept.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", default="events")
    parser.add_argument("--scale", type=float, default=1.0, help="simulator scale the pages are captured at")
    parser.add_argument("--pages", type=int, default=6, help="pages replayed (the first ones holding records)")
    parser.add_argument("--batch-rows", type=int, default=2000, help="rows per Arrow batch (a run's are bounded by bytes too)")
    parser.add_argument("--klx", type=Path, default=ROOT, help="the checkout whose engine runs (default: this one)")
    parser.add_argument("--replay", type=Path, help=argparse.SUPPRESS)  # the child under valgrind
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay:
        sys.path.insert(0, str(args.klx.resolve()))
        print(f"kept {replay(args.replay, args.stream, args.pages, args.stage, args.batch_rows)}")
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    sys.path.insert(0, str(ROOT))
    from bench.engine import capture

    with tempfile.TemporaryDirectory() as tmp:
        # Sorted: requests in flight together are answered in any order, and both checkouts must read the same pages.
        bodies = sorted(body for body in capture(args.scale, args.stream, Path(tmp)) if json.loads(body).get("data"))
        pages_file = Path(tmp) / "pages.pickle"
        pages_file.write_bytes(pickle.dumps(bodies))
        spent, kept = {}, 0
        for stage in STAGES:  # each stage's way less the same way with no page: imports and set-up cancel out
            with_pages, kept = count(args.klx, pages_file, args.stream, args.pages, stage, args.batch_rows)
            spent[stage] = with_pages - count(args.klx, pages_file, args.stream, 0, stage, args.batch_rows)[0]
        print(f"{args.stream}: {kept:,} records in {min(args.pages, len(bodies))} pages, engine of {args.klx}")
        before = 0
        for stage in STAGES:
            print(f"  {stage:<8} {(spent[stage] - before) / kept / 1000:8.1f} thousand instructions a record")
            before = spent[stage]
        print(f"  summed   {spent['rows'] / kept / 1000:8.1f} thousand instructions a record")
    return 0


if __name__ == "__main__":
    sys.exit(main())
