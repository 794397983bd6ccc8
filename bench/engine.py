"""Benchmark (run by hand, not a test): klx's engine alone, µs per record from response bytes to committed DuckDB rows.

    python bench/engine.py --scale 5 --stream events --repeat 3

The simulator serves the stream's pages once (in this process); their bytes are kept in memory. Then:

- end to end: `engine.run.run` syncs the stream (full refresh into a fresh DuckDB file) with HttpClient.get
  replaced by a replay of those bytes, so everything klx does per record counts and no network does;
- per stage (CPU time): the same pages through each stage on its own: parse (bytes -> Python values, as
  HttpClient reads them), records (page -> normalised records, cursor, filter, key check; then the pages'
  decoded objects freed, as a run's reader frees each page), rows (records -> column lists -> Arrow batches
  cut as a run cuts them: at api.batch_rows rows or run.BATCH_BYTES of responses, each record counting its
  share of its page; then the records freed), duckdb (Arrow batches -> the table as a run's full
  refresh loads them: the run's TableSpec and batches stamped in load order, so INSERTs unmatched, then its
  finish; committed). The stages run with the collector paced as a run paces it (engine/collection.py):
  with Python's default thresholds, young collections over the parsed pages held in memory made parse read
  10.4 µs an event instead of 6.1.

The end to end is also split by thread (CPU time, the run with the least): the stream's reader (records and
rows), the fetch threads (parsing), the writer (DuckDB's statements, called from Python; DuckDB works on the
calling thread too), DuckDB's own worker threads (the process's CPU time less every Python thread's) and the
main thread (reading the config and spec, opening and closing DuckDB). The reader and the fetch threads hold
the GIL nearly all their time, the writer hardly at all (py-spy --gil: 0.6% of the samples), so a run lasts
at least as long as the reader and the fetch threads together.

Each figure is the best of --repeat runs (the machine may be shared; the best run is the least disturbed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import collection  # noqa: E402
from engine import run as run_module  # noqa: E402
from engine.bodies import body_parser  # noqa: E402
from engine.config import Config  # noqa: E402
from engine.destinations import build_destination  # noqa: E402
from engine.http import HttpClient, Page, parse_body  # noqa: E402
from engine.records import RecordReader, Rejected  # noqa: E402
from engine.rows import LOAD_COLUMNS, LOAD_ORDER, ColumnMap, RowBuilder  # noqa: E402
from engine.schema import TableSpec  # noqa: E402
from engine.spec import Spec  # noqa: E402
from klaviyo_sim import Simulator  # noqa: E402
from tests.klx_testing import SIM_NOW, write_config  # noqa: E402

API_KEY = "pk_sim_demo_key"


def capture(scale: float, stream: str, work: Path) -> list[bytes]:
    """The raw bodies of every page klx reads for `stream` from a fresh simulator, in order."""
    bodies: list[bytes] = []
    original = HttpClient._read

    def keep(self: HttpClient, response: Any, stream_name: str, shown: str) -> bytes:
        body = original(self, response, stream_name, shown)
        bodies.append(body)
        return body

    with Simulator(seed=0, scale=scale, now=SIM_NOW) as sim, mock.patch.object(HttpClient, "_read", keep):
        config = write_config(work, {stream: "full_refresh"}, base_url=sim.url, database=work / "capture.duckdb", prefix="cap_")
        run_module.run(Config.from_yaml(config, env={"KLAVIYO_API_KEY": API_KEY}), now=SIM_NOW)
    return bodies


def end_to_end(bodies: list[bytes], stream: str, work: Path, n: int) -> tuple[float, float, int, dict[str, float]]:
    """(wall seconds, CPU seconds, records, CPU seconds by thread) of one real run of the stream, its HTTP replaced
    by the captured bodies."""
    replay = iter(bodies)

    def get(self: HttpClient, url: str, params: dict[str, str], **_: Any) -> Page:
        return Page(body=self.parse(next(replay)), url=url, received_at=time.time())

    threads: dict[str, float] = {}
    counting = threading.Lock()
    run_thread = threading.Thread.run

    def counted(self: threading.Thread) -> None:  # a thread's CPU time, added up by its role when it ends
        try:
            run_thread(self)
        finally:
            with counting:
                prefix = self.name.rsplit("_", 1)[0]
                role = "fetch" if prefix == f"klx-{stream}" else _ROLES.get(prefix, "other")
                threads[role] = threads.get(role, 0.0) + time.thread_time()

    config = write_config(work, {stream: "full_refresh"}, base_url="http://127.0.0.1:9", database=work / f"e2e{n}.duckdb", prefix=f"e{n}_")
    with mock.patch.object(HttpClient, "get", get), mock.patch.object(threading.Thread, "run", counted):
        began, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
        summary = run_module.run(Config.from_yaml(config, env={"KLAVIYO_API_KEY": API_KEY}), now=SIM_NOW)
        seconds, main = time.perf_counter() - began, time.thread_time() - main
        for thread in threading.enumerate():  # fetch threads closed without waiting end a moment after the run
            if not thread.daemon and thread is not threading.current_thread():
                thread.join()
        cpu = time.process_time() - cpu
    if summary.failed:
        raise SystemExit(f"replay failed: {summary.failed[0].error}")
    threads["main"] = main
    # DuckDB's own worker threads are not Python threads: what no ended Python thread spent (a daemon still
    # running, such as klx-progress, would count here too; they wake a few times a second).
    threads["duckdb"] = cpu - sum(threads.values())
    return seconds, cpu, summary.events, threads


# Thread name prefixes (a pool's number taken off) -> what the split calls them; a fetch thread is named after
# its stream (run.StreamSync._sequence).
_ROLES = {"klx-stream": "reader", "klx-writer": "writer"}
_THREAD_ORDER = ("reader", "fetch", "writer", "duckdb", "main", "other")


def stages(bodies: list[bytes], stream_name: str, work: Path, n: int) -> tuple[dict[str, float], int]:
    """Seconds spent in each stage over all pages, and the number of batches loaded."""
    spec = Spec.from_yaml(ROOT / "specs" / "klaviyo.yaml")
    stream = spec.streams[stream_name]
    times = dict.fromkeys(("parse", "records", "rows", "duckdb"), 0.0)
    clock = time.process_time  # CPU seconds of this process (DuckDB's threads included): a loaded machine barely moves them

    parse = body_parser(spec.api, parse_body)  # what HttpClient.get reads a body with
    began = clock()
    parsed = [parse(b) for b in bodies]
    times["parse"] = clock() - began

    reader = RecordReader(spec.api, stream)
    began = clock()
    pages = []
    for body, raw in zip(parsed, bodies):
        kept = []
        records = list(reader.records(body, reader.page_records(body, "replay"), {}))
        reader.newest(records)  # as StreamSync._read_page moves the cursor
        for record in records:
            if isinstance(record, Rejected):
                continue
            if reader.keep(record) and reader.key_problem(record) is None:
                kept.append(record)
        pages.append((kept, len(raw) // max(len(records), 1)))  # each record's share of its response, as StreamSync counts it
    parsed.clear()  # a run's reader frees each page's decoded objects once its records are read
    times["records"] = clock() - began

    columns = ColumnMap(None, reserved=LOAD_COLUMNS)
    rows = RowBuilder(columns, spec.api.flatten_depth)
    received = datetime.now(timezone.utc)
    load = {"uuid_ts": received, "context_sources_job_run_id": "bench", "context_sources_task_run_id": "bench"}
    began = clock()
    batches = []
    for kept, size in pages:
        for record in kept:
            rows.add(record, received, size)
            # Cut where StreamSync cuts (DuckDB's batch_scale is 1); each batch stamped after the one before, as _flush stamps them.
            if len(rows) >= spec.api.batch_rows or rows.nbytes >= run_module.BATCH_BYTES:
                batches.append(rows.take({**load, LOAD_ORDER: received + timedelta(microseconds=len(batches))}))
    if len(rows):
        batches.append(rows.take({**load, LOAD_ORDER: received + timedelta(microseconds=len(batches))}))
    pages.clear()  # and each record once it is in the column lists
    times["rows"] = clock() - began

    config = write_config(work, {stream_name: "full_refresh"}, base_url=None, database=work / f"stage{n}.duckdb", prefix=f"s{n}_")
    destination = build_destination(Config.from_yaml(config, env={"KLAVIYO_API_KEY": API_KEY}).destination)
    key = tuple(columns.name((k,)) for k in stream.primary_key)
    cursor = columns.name(tuple(stream.cursor.field.split("."))) if stream.cursor else None
    began = clock()
    table_load = destination.begin(stream_name, TableSpec(name=f"s{n}_{stream_name}", primary_key=key, cursor=cursor, loaded_at=LOAD_ORDER), replace=True)
    for batch, batch_columns in batches:
        table_load.write(batch, batch_columns, {})
    table_load.finish({})
    times["duckdb"] = clock() - began
    destination.close()
    return times, len(batches)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=5.0, help="simulator scale (1 = 10,000 events)")
    parser.add_argument("--stream", default="events")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bodies = capture(args.scale, args.stream, work)
        megabytes = sum(map(len, bodies)) / 1e6
        runs = [end_to_end(bodies, args.stream, work, n) for n in range(args.repeat)]
        best_wall, best_cpu, records = min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2]
        by_thread = min(runs, key=lambda r: r[1])[3]  # the least disturbed run's split
        best = dict.fromkeys(("parse", "records", "rows", "duckdb"), float("inf"))
        collecting = collection.pace()  # as run() does
        for n in range(args.repeat):
            times, batches = stages(bodies, args.stream, work, n)
            for stage, seconds in times.items():
                best[stage] = min(best[stage], seconds)
        collection.restore(collecting)
    print(f"{args.stream}: {records:,} records in {len(bodies)} pages ({megabytes:.1f} MB), best of {args.repeat}")
    print(f"  end to end (bytes -> committed DuckDB rows): {best_wall * 1e6 / records:6.1f} µs/record wall "
          f"({records / best_wall:,.0f} records/s), {best_cpu * 1e6 / records:6.1f} µs/record CPU")
    split = ", ".join(f"{role} {by_thread[role] * 1e6 / records:.1f}" for role in _THREAD_ORDER if role in by_thread)
    print(f"    by thread, µs/record CPU (its least-CPU run): {split}")
    for stage, seconds in best.items():
        print(f"  {stage:<8} {seconds * 1e6 / records:6.1f} µs/record CPU")
    print(f"  stages summed {sum(best.values()) * 1e6 / records:6.1f} µs/record CPU ({batches} batches of {records / batches:,.0f} rows on average)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
