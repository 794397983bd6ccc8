"""Soak benchmark (run by hand, not a test): a large sync under faults, rate limits and kill -9, then checked against the truth.

    python bench/soak.py --scale 10 --fault-rate 0.1 --kills 2

The simulator serves from this process (its truth is read directly); every sync is a `klx run`
subprocess. Kill points are seeded request counts, so a run is repeatable. Run N of --kills is an
incremental sync (the first from scratch, later ones after source changes) killed with SIGKILL after a
random number of API requests; the last killed run is a --full-refresh. A final sync runs to the end
and every table is compared with the simulator's truth: keys, and cursor values where there is one.
Exit status 0 only when every table matches.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from klaviyo_sim import FaultConfig, Simulator  # noqa: E402
from klaviyo_sim.faults import KINDS  # noqa: E402
from tests.klx_testing import ALL_RESOURCES, START_DATE, default_modes, key_of, rows, write_config  # noqa: E402

CURSOR = {"campaigns": "updated_at", "events": "datetime"}
NO_CURSOR = ("metrics", "segments_profiles")
MUTABLE = ("campaigns", "email_templates", "flows", "lists", "segments", "profiles")


def klx_run(config: Path, api_key: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "KLAVIYO_API_KEY": api_key, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(config), *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(sim: Simulator, config: Path, label: str, args: tuple[str, ...], kill_at: int | None) -> tuple[float, int, str, int | None]:
    """One `klx run`, killed after `kill_at` API requests when given; (seconds, requests, how it ended, exit code)."""
    first = len(sim.request_log)
    began = time.perf_counter()
    process = klx_run(config, sim.api_key, *args)
    ended = "finished"
    while process.poll() is None:
        if kill_at is not None and len(sim.request_log) - first >= kill_at:
            process.send_signal(signal.SIGKILL)
            ended = f"kill -9 after {kill_at} requests"
            break
        time.sleep(0.01)
    output, _ = process.communicate()
    seconds = time.perf_counter() - began
    requests = len(sim.request_log) - first
    print(f"{label:<28} {seconds:>8.1f}s {requests:>7} requests  {ended} (exit {process.returncode})", flush=True)
    if ended == "finished":
        print("\n".join("    " + line for line in output.splitlines()[-14:]))
    return seconds, requests, ended, process.returncode


def compare(sim: Simulator, database: Path) -> int:
    """Print each table against the truth; the number of tables that differ."""
    bad = 0
    print(f"\n{'table':<20} {'truth':>8} {'landed':>8} {'missing':>8} {'extra':>8} {'stale':>8}")
    for resource in ALL_RESOURCES:
        truth = sim.truth(resource, START_DATE)
        landed = rows(database, f'select * from "kl_rudder_{resource}"')
        want = {key_of(resource, t): t.get("cursor") for t in truth}
        have = {key_of(resource, r): r.get(CURSOR.get(resource, "updated")) for r in landed}
        stale = 0
        if resource not in NO_CURSOR:
            stale = sum(1 for k, v in want.items() if k in have and have[k] != datetime.fromisoformat(v))
        missing, extra = len(want.keys() - have.keys()), len(have.keys() - want.keys())
        duplicates = len(landed) - len(have)
        bad += bool(missing or extra or stale or duplicates)
        print(f"{resource:<20} {len(truth):>8} {len(landed):>8} {missing:>8} {extra:>8} {stale:>8}" + (f"  {duplicates} duplicate keys" if duplicates else ""))
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow-seconds", type=float, default=1.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    faults = FaultConfig(rate=args.fault_rate, kinds=KINDS, seed=args.seed, slow_seconds=args.slow_seconds)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as work, Simulator(seed=args.seed, scale=args.scale, rate_limits=True, faults=faults) as sim:
        database = Path(work) / "soak.duckdb"
        # A killed client resets its connections; the server's default handler prints each as a traceback.
        sim._server.handle_error = lambda request, client_address: None
        config = write_config(Path(work), default_modes(), base_url=sim.url, database=database)
        print(f"simulator {sim.url}: scale {args.scale}, faults {args.fault_rate:.0%} of {', '.join(KINDS)}, rate limits on, seed {args.seed}")
        # How many requests a whole sync takes bounds where the kills land (between 10% and 90% of it).
        _, total, _, _ = run(sim, config, "reference sync (unkilled)", (), None)
        database.unlink()
        for n in range(args.kills):
            if n:
                for resource in MUTABLE:
                    sim.mutate(resource, update=20, create=5)
                sim.mutate("events", create=50)
            full = n == args.kills - 1 and args.kills > 1
            kill_at = rng.randint(max(1, total // 10), max(2, total * 9 // 10))
            run(sim, config, f"run {n + 1} ({'full refresh' if full else 'incremental'})", ("--full-refresh",) if full else (), kill_at)
        seconds, requests, _, code = run(sim, config, "final run (incremental)", (), None)
        bad = compare(sim, database)
        api_requests = sum(1 for _, path, _ in sim.request_log if path.startswith("/api"))
    print(f"\n{'matches the truth' if not bad and code == 0 else f'{bad} tables differ (final exit {code})'}; "
          f"final run {seconds:.1f}s, {requests} requests; {api_requests} API requests in all; {time.perf_counter() - began:.0f}s wall")
    return 0 if not bad and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
