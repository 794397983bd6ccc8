"""Benchmark (run by hand, not a test): one `klx run` against the simulator, measured against the rate-limit floor.

    python bench/run.py --scale 10 --latency-ms 150 --rate-limits klaviyo
    python bench/run.py --scale 2 --latency-ms 150 --rate-limits klaviyo --limit-fraction 0.25
    python bench/run.py --scale 10 --latency-ms 0 --rate-limits off --streams events,profiles

The simulator runs in its own process (its serving cost is not klx's) and klx runs as `klx run` in another,
so its peak RSS and CPU time are its own (wait4's ru_maxrss, ru_utime + ru_stime); its RSS is also sampled every
--sample-ms (/proc; default 20 ms), to tell a steady level from a spike and a level that keeps growing with the stream. Every stream is a full refresh, so runs are comparable.
Printed per stream: records, records/s, requests, 429s, wall time; then per rate bucket the requests it
counted and the lower bound on wall time its limits set; then the total, with the ratio wall / bound.

The bound of a bucket with burst b/s and steady s/min that served n requests: the first s go out at b a
second, each later s a minute after the previous ones, so the n-th leaves at floor((n-1)/s)*60 +
((n-1) mod s)/b seconds; add one request's latency for its answer. The run's bound is the largest
bucket's (buckets are independent: streams on different buckets can run at the same time).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.klx_testing import ALL_RESOURCES, SIM_NOW, write_config  # noqa: E402

API_KEY = "pk_sim_demo_key"


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    """`python -m klaviyo_sim` with the run's knobs, once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "klaviyo_sim", "--port", str(port), "--scale", str(args.scale), "--seed", str(args.seed),
               "--now", SIM_NOW.isoformat(), "--latency", str(args.latency_ms / 1000), "--limit-fraction", str(args.limit_fraction)]
    if args.rate_limits == "klaviyo":
        command.append("--rate-limits")
    if getattr(args, "warm", False):
        command.append("--cache-responses")
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(6000):  # building scale 100 (1M events, 100k profiles) takes minutes on a loaded machine
        try:
            requests.get(f"{url}/_sim/health", timeout=1)
            return server, url
        except requests.ConnectionError:
            if server.poll() is not None:
                raise SystemExit(f"simulator exited with {server.returncode}")
            time.sleep(0.1)
    server.kill()
    raise SystemExit("simulator did not start within 600 s")


def bucket_bound(requests_counted: int, burst: int, steady: int, latency: float) -> float:
    """Seconds the fastest client needs for `requests_counted` requests under (burst/s, steady/min)."""
    if requests_counted <= 0:
        return 0.0
    last = requests_counted - 1
    return (last // steady) * 60.0 + (last % steady) / burst + latency


def rss_kib(pid: int) -> int | None:
    """The resident set of a live process (None once it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None


def run_klx(config: Path, report: Path, log: Path, every: float = 0.02) -> tuple[float, int, int, list[tuple[float, int]], float]:
    """(wall seconds, peak RSS in KiB, exit code, RSS samples (seconds, KiB), CPU seconds) of one `klx run`."""
    env = {**os.environ, "KLAVIYO_API_KEY": API_KEY, "PYTHONPATH": str(ROOT)}
    # As an installed klx runs: `pip install .` compiles its modules' bytecode. A checkout run with
    # PYTHONDONTWRITEBYTECODE=1 (set on some machines) compiled engine/'s 45 modules from source on every
    # run instead: 0.11 s of each (cProfile, 2026-12-01), which the Airbyte connector, run from its
    # installed package, never paid.
    compileall.compile_dir(ROOT / "engine", quiet=1)
    samples: list[tuple[float, int]] = []
    began = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(config), "--report", str(report)],
                                   cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            rss = rss_kib(process.pid)
            if rss is not None:
                samples.append((time.perf_counter() - began, rss))
            time.sleep(every)
    wall = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss, process.returncode, samples, usage.ru_utime + usage.ru_stime


def rss_profile(samples: list[tuple[float, int]]) -> str:
    """The sampled RSS in MB at each tenth of the run, then its median: a level that grows shows here."""
    if not samples:
        return "no samples"
    tenths = [samples[min(len(samples) - 1, len(samples) * k // 10)][1] // 1024 for k in range(11)]
    median = sorted(kib for _, kib in samples)[len(samples) // 2] // 1024
    return f"by tenths of the run {' '.join(map(str, tenths))} MB; median {median} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added by the simulator to every request")
    parser.add_argument("--rate-limits", choices=("klaviyo", "off"), default="klaviyo")
    parser.add_argument("--limit-fraction", type=float, default=1.0, help="every limit cut to this share (0.25 = a quarter)")
    parser.add_argument("--streams", default=",".join(ALL_RESOURCES), help="comma list (default: all ten)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-limit", help="destination.memory_limit for DuckDB (default: klx's)")
    parser.add_argument("--sample-ms", type=float, default=20.0, help="how often klx's RSS is sampled")
    args = parser.parse_args()
    streams = [s.strip() for s in args.streams.split(",") if s.strip()]
    server, url = start_simulator(args)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            config = write_config(work, {name: "full_refresh" for name in streams}, base_url=url, database=work / "bench.duckdb")
            if args.memory_limit:
                config.write_text(config.read_text().replace("  type: duckdb\n", f"  type: duckdb\n  memory_limit: {args.memory_limit}\n"))
            wall, peak_kib, code, samples, cpu = run_klx(config, work / "report.json", work / "klx.log", args.sample_ms / 1000)
            report = json.loads((work / "report.json").read_text()) if (work / "report.json").exists() else {"streams": []}
            if code:
                print((work / "klx.log").read_text()[-3000:], file=sys.stderr)
        limits = requests.get(f"{url}/_sim/limits", timeout=10).json()
    finally:
        server.terminate()
        server.wait()
    latency = args.latency_ms / 1000
    print(f"scale {args.scale:g}, latency {args.latency_ms:g} ms, rate limits {args.rate_limits}"
          + (f" cut to {args.limit_fraction:g}" if args.limit_fraction != 1 else "") + f", klx exit {code}")
    print(f"\n{'stream':<20} {'records':>9} {'rec/s':>9} {'requests':>9} {'429s':>6} {'wall s':>8}")
    for s in report["streams"]:
        rate = s["records"] / s["seconds"] if s["seconds"] else 0.0
        print(f"{s['stream']:<20} {s['records']:>9,} {rate:>9,.0f} {s['requests']:>9,} {s['http_429']:>6} {s['seconds']:>8.1f}")
    bound = 0.0
    if args.rate_limits == "klaviyo":
        print(f"\n{'rate bucket':<34} {'requests':>9} {'burst/s':>8} {'steady/m':>9} {'bound s':>8}")
        for name, b in sorted(limits["buckets"].items()):
            seconds = bucket_bound(b["counted"], b["burst"], b["steady"], latency)
            bound = max(bound, seconds)
            print(f"{name:<34} {b['counted']:>9,} {b['burst']:>8} {b['steady']:>9} {seconds:>8.1f}")
    records = sum(s["records"] for s in report["streams"])
    requests_sent = sum(s["requests"] for s in report["streams"])
    refused = sum(s["http_429"] for s in report["streams"])
    ratio = f"{wall / bound:.2f}" if bound else "n/a (no limits)"
    print(f"\n{'total':<20} {records:>9,} {records / wall:>9,.0f} {requests_sent:>9,} {refused:>6} {wall:>8.1f}")
    print(f"RSS of klx {rss_profile(samples)}; CPU of klx {cpu:.1f} s")
    print(f"peak RSS of klx {peak_kib / 1024:.0f} MB; lower bound {bound:.1f}s; wall / bound {ratio}; "
          f"429s by the simulator {limits['refused']}")
    return code


if __name__ == "__main__":
    sys.exit(main())
