"""Benchmark (run by hand, not a test): where a sync's RSS goes, sampled finely beside what klx is doing.

    python bench/memtrace.py --scale 10
    python bench/memtrace.py --scale 100 --json /tmp/trace.json

Runs klx's run() in this process against the simulator (bench/run.py's, own process) on events + profiles,
full refresh into DuckDB, with engine/memory.py's allocator settings as `klx run` has them (so its RSS is
~10-25 MB above a `klx run`'s: this process also holds the harness). A thread samples every --sample-ms:
RSS (anonymous and file-backed), pymalloc's arenas (every 25th sample: sys._debugmallocstats walks them),
glibc's heaps (mallinfo2), DuckDB's bundled jemalloc (allocated and resident, through its exported
mallctl), DuckDB's duckdb_memory() by tag (every 5th sample), pyarrow's pool, the size of DuckDB's
write-ahead log (a checkpoint empties it) and what the run is doing: per stream the pages fetched and not
yet taken, the fetches in flight, the rows and bytes of the batch being built, the batch being written,
the warehouse statement running and whether a commit is. Printed: the RSS by tenths, the samples around
the peak, the RSS while each kind of activity ran, and one sample a second.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import API_KEY, start_simulator  # noqa: E402
from tests.klx_testing import write_config  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


class Jemalloc:
    """DuckDB's bundled jemalloc (its mallctl is exported): bytes allocated and resident."""

    def __init__(self) -> None:
        import _duckdb

        self.lib = ctypes.CDLL(_duckdb.__file__)
        self.lib.duckdb_je_mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p, ctypes.c_size_t]

    def stats(self) -> tuple[float, float]:
        epoch = ctypes.c_uint64(1)
        size = ctypes.c_size_t(8)
        self.lib.duckdb_je_mallctl(b"epoch", ctypes.byref(epoch), ctypes.byref(size), ctypes.byref(epoch), 8)
        values = []
        for name in (b"stats.allocated", b"stats.resident"):
            value, size = ctypes.c_size_t(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_size_t))
            self.lib.duckdb_je_mallctl(name, ctypes.byref(value), ctypes.byref(size), None, 0)
            values.append(round(value.value / 1e6, 1))
        return values[0], values[1]


def pymalloc() -> tuple[float, float]:
    """(MB in pymalloc's arenas, MB of them in allocated blocks), from sys._debugmallocstats (which writes to fd 2)."""
    import re
    import tempfile

    saved = os.dup(2)
    with tempfile.TemporaryFile() as out:
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode()
    arenas = re.search(r"# arenas allocated current\s*=\s*([\d,]+)", text)
    used = re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", text)
    return (int(arenas[1].replace(",", "")) * 1048576 / 1e6 if arenas else 0.0, int(used[1].replace(",", "")) / 1e6 if used else 0.0)


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 1e6


def rss_kinds() -> dict[str, float]:
    """RssAnon and RssFile of this process, MB."""
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("RssAnon:", "RssFile:")):
                found[line[3:7].lower()] = round(int(line.split()[1]) / 1024, 1)
    return found


class Activity:
    """What the run is doing now, kept up to date by the wrappers below; read by the sampler."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: dict[str, int] = {}  # stream -> pages fetched and not yet taken
        self.held_bytes: dict[str, int] = {}
        self.flying: dict[str, int] = {}  # stream -> fetches in flight
        self.writing: tuple[str, int] | None = None  # (stream, rows) of the batch being written
        self.committing = False
        self.statement: str | None = None  # the kind of warehouse statement running
        self.syncs: list[Any] = []
        self.duckdb: Any = None  # a cursor on the run's DuckDB database, for duckdb_memory()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            building = {s.stream.name: (len(s.rows), s.rows.nbytes, len(s.reading)) for s in self.syncs}
            return {"held": dict(self.held), "held_mb": {k: round(v / 1e6, 1) for k, v in self.held_bytes.items()},
                    "flying": dict(self.flying), "building": building, "writing": self.writing,
                    "statement": self.statement, "committing": self.committing}


def instrument(activity: Activity) -> None:
    """Wrap the engine's fetches, batch writes and commits so that `activity` says what runs."""
    from engine import run as run_module
    from engine.destinations import duckdb as duckdb_module
    from engine.destinations import table_load, warehouse

    def stream_of(name: str) -> str:
        return name.removeprefix("klx-")

    original_sequence = run_module.StreamSync._sequence

    def sequence(self: Any, stream: Any, path: str, params: Any, reader: Any, eager: bool = True) -> Any:
        prefetch = original_sequence(self, stream, path, params, reader, eager)
        fetch, name = prefetch.fetch, stream.name

        def counted(request: Any) -> Any:
            with activity.lock:
                activity.flying[name] = activity.flying.get(name, 0) + 1
            try:
                answer = fetch(request)
            finally:
                with activity.lock:
                    activity.flying[name] -= 1
            with activity.lock:
                activity.held[name] = activity.held.get(name, 0) + 1
                activity.held_bytes[name] = activity.held_bytes.get(name, 0) + answer[0].size
            return answer

        prefetch.fetch = counted
        original_next = prefetch.following

        def following(request: Any, answer: Any) -> Any:  # runs when the caller takes the answer
            with activity.lock:
                activity.held[name] -= 1
                activity.held_bytes[name] -= answer[0].size
            return original_next(request, answer)

        prefetch.following = following
        return prefetch

    run_module.StreamSync._sequence = sequence
    original_init = run_module.StreamSync.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        with activity.lock:
            activity.syncs.append(self)

    run_module.StreamSync.__init__ = init
    original_write = table_load.SqlLoad.write

    def write(self: Any, batch: Any, columns: Any, state: Any, deletes: Any = None) -> Any:
        activity.writing = (self._stream, batch.num_rows)
        try:
            return original_write(self, batch, columns, state, deletes)
        finally:
            activity.writing = None

    table_load.SqlLoad.write = write

    @contextlib.contextmanager
    def transaction(self: Any) -> Any:
        self._con.begin()
        try:
            yield
            activity.committing = True
            try:
                self._con.commit()
            finally:
                activity.committing = False
        except BaseException:
            self.rollback()
            raise

    duckdb_module.DuckDBDestination.transaction = transaction
    original_execute = warehouse.SqlDestination.execute

    def execute(self: Any, kind: str, table: str, statement: Any, params: Any = ()) -> Any:
        activity.statement = kind
        try:
            return original_execute(self, kind, table, statement, params)
        finally:
            activity.statement = None

    warehouse.SqlDestination.execute = execute
    original_open = duckdb_module.DuckDBDestination.__init__

    def open_(self: Any, **kwargs: Any) -> None:
        original_open(self, **kwargs)
        activity.duckdb = self._con.cursor()

    duckdb_module.DuckDBDestination.__init__ = open_


def sample(activity: Activity, wal: Path, every: float, samples: list[dict[str, Any]], stop: threading.Event) -> None:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _Mallinfo2
    jemalloc = Jemalloc()
    import pyarrow

    arrow = pyarrow.default_memory_pool()
    began = time.perf_counter()
    count = 0
    tags: dict[str, float] = {}
    arenas = (0.0, 0.0)
    while not stop.is_set():
        count += 1
        if activity.duckdb is not None and count % 5 == 1:  # DuckDB's own accounting, every fifth sample
            with contextlib.suppress(Exception):
                found = activity.duckdb.execute("SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0").fetchall()
                tags = {tag: round(used / 1e6, 1) for tag, used in found}
        if count % 25 == 1:  # pymalloc's arenas, every 25th sample (it walks them all)
            arenas = pymalloc()
        info = libc.mallinfo2()
        je_allocated, je_resident = jemalloc.stats()
        try:
            wal_mb = wal.stat().st_size / 1e6
        except OSError:
            wal_mb = 0.0
        samples.append({"t": round(time.perf_counter() - began, 3), "rss": round(rss_mb(), 1), **rss_kinds(), "arena": round(info.arena / 1e6, 1), "arrow": round(arrow.bytes_allocated() / 1e6, 1), "je": je_allocated, "je_res": je_resident,
                        "heap_used": round(info.uordblks / 1e6, 1), "heap_free": round(info.fordblks / 1e6, 1),
                        "mapped": round(info.hblkhd / 1e6, 1),
                        "py": round(arenas[0], 1), "py_used": round(arenas[1], 1), "wal": round(wal_mb, 1), "duckdb": tags, **activity.snapshot()})
        time.sleep(every)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--streams", default="events,profiles")
    parser.add_argument("--sample-ms", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write every sample here")
    parser.add_argument("--memory-limit", help="destination.memory_limit for DuckDB (default: klx's)")
    parser.add_argument("--batch-bytes", type=int, help="engine.run.BATCH_BYTES for this run")
    parser.add_argument("--arrow-pool", choices=("system", "jemalloc", "mimalloc"), help="pyarrow's default memory pool")
    args = parser.parse_args()
    args.latency_ms, args.limit_fraction, args.rate_limits = 0.0, 1.0, "off"
    streams = [s.strip() for s in args.streams.split(",") if s.strip()]
    server, url = start_simulator(args)
    from engine.memory import return_large_blocks

    return_large_blocks()
    if args.arrow_pool:
        import pyarrow

        pyarrow.set_memory_pool(getattr(pyarrow, f"{args.arrow_pool}_memory_pool")())
    if args.batch_bytes:
        import engine.run

        engine.run.BATCH_BYTES = args.batch_bytes
    imported = rss_mb()
    from engine.config import Config
    from engine.run import run

    activity = Activity()
    instrument(activity)
    samples: list[dict[str, Any]] = []
    stop = threading.Event()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            database = work / "bench.duckdb"
            config_path = write_config(work, {name: "full_refresh" for name in streams}, base_url=url, database=database)
            if args.memory_limit:
                config_path.write_text(config_path.read_text().replace("  type: duckdb\n", f"  type: duckdb\n  memory_limit: {args.memory_limit}\n"))
            config = Config.from_yaml(config_path, env={"KLAVIYO_API_KEY": API_KEY})
            sampler = threading.Thread(target=sample, args=(activity, Path(f"{database}.wal"), args.sample_ms / 1000, samples, stop), daemon=True)
            cpu = time.process_time()
            sampler.start()
            began = time.perf_counter()
            summary = run(config)
            wall = time.perf_counter() - began
            cpu = time.process_time() - cpu
            stop.set()
            sampler.join()
    finally:
        server.terminate()
        server.wait()
    print(f"scale {args.scale:g}: {summary.events:,} records, wall {wall:.1f} s, CPU {cpu:.1f} s, exit {summary.exit_code}; "
          f"RSS before the run {imported:.0f} MB")
    report(samples)
    if args.json:
        args.json.write_text(json.dumps(samples))
    return summary.exit_code


def line(s: dict[str, Any]) -> str:
    """One sample on one line: RSS and what it is made of, then what the run was doing."""
    known = s["py"] + s["arena"] + s["mapped"] + s["je_res"]
    doing = f"held {s['held_mb']} flying {s['flying']} building {s['building']} writing {s['writing']}"
    doing += f" {s['statement'] or ''}{' COMMIT' if s['committing'] else ''} wal {s['wal']}"
    return (f"{s['t']:7.2f} s  RSS {s['rss']:4.0f} = files {s['file']:3.0f} + anon {s['anon']:4.0f} (python {s['py']:3.0f}, "
            f"glibc {s['arena'] + s['mapped']:3.0f}, duckdb {s['je_res']:3.0f} [{s['je']:3.0f} allocated {s['duckdb']}], "
            f"other {s['anon'] - known:3.0f})  {doing}")


def report(samples: list[dict[str, Any]]) -> None:
    rss = [s["rss"] for s in samples]
    tenths = [rss[min(len(rss) - 1, len(rss) * k // 10)] for k in range(11)]
    median = sorted(rss)[len(rss) // 2]
    print(f"RSS by tenths {' '.join(f'{v:.0f}' for v in tenths)} MB; median {median:.0f}; peak {max(rss):.0f}")
    print("(MB; python: pymalloc's arenas; glibc: its heaps (free parts included, resident or not) and mapped blocks;")
    print(" duckdb: its jemalloc, resident; other: anonymous memory the rest leave, e.g. pyarrow's pool, thread stacks)")
    peak = max(range(len(rss)), key=rss.__getitem__)
    print("\naround the peak:")
    for s in samples[max(0, peak - 10):peak + 5]:
        print(("* " if s is samples[peak] else "  ") + line(s))
    print("\nRSS when (median / max over the samples):")
    kinds = {
        "committing": [s for s in samples if s["committing"]],
        "writing, not committing": [s for s in samples if s["writing"] and not s["committing"]],
        "not writing": [s for s in samples if not s["writing"]],
        "a checkpoint emptied the WAL next sample": [a for a, b in zip(samples, samples[1:]) if b["wal"] < a["wal"]],
    }
    for kind, chosen in kinds.items():
        values = sorted(s["rss"] for s in chosen)
        if values:
            print(f"  {kind:<44} {len(values):>5} samples  {values[len(values) // 2]:6.0f} / {values[-1]:6.0f} MB")
    print("\nevery second:")
    last = -1.0
    for s in samples:
        if s["t"] - last >= 1.0:
            last = s["t"]
            print("  " + line(s))


if __name__ == "__main__":
    sys.exit(main())
