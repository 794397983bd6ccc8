"""Benchmark (run by hand, not a test): klx events/s syncing the simulator into DuckDB.

    python bench/klx_sync.py --scale 5 --resources events,profiles

The simulator runs in its own process so its serving cost is not counted against klx's core.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.klx_testing import SIM_NOW, sync, write_config  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=5.0)
    parser.add_argument("--resources", default="events,profiles")
    parser.add_argument("--port", type=int, default=8798)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "klaviyo_sim", "--port", str(args.port), "--scale", str(args.scale), "--now", SIM_NOW.isoformat()],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(300):
            try:
                requests.get(f"{url}/_sim/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as work:
            resources = {name: "full_refresh" for name in args.resources.split(",")}
            config = write_config(Path(work), resources, base_url=url, database=Path(work) / "bench.duckdb")
            began = time.perf_counter()
            summary = sync(config, "pk_sim_demo_key", now=SIM_NOW)
            seconds = time.perf_counter() - began
        for s in summary.streams:
            print(f"{s.stream:<12} {s.events:>8} events {s.seconds:>7.2f}s {s.events / s.seconds:>8,.0f} events/s")
        print(f"{'total':<12} {summary.events:>8} events {seconds:>7.2f}s {summary.events / seconds:>8,.0f} events/s")
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
