"""Benchmark: profile records/s served by klaviyo_sim on one core (page size 100, with additional fields).

Each repetition starts a fresh `python -m klaviyo_sim` pinned to one CPU (zero latency) and runs --passes full
passes over /api/profiles from this process, pinned to the other CPUs. A pass fetches every profile once with
--clients concurrent pagers (each its own requests.Session, in opposite sort orders, so the server is not idle
while a client parses JSON); its rate is distinct profiles received / wall seconds. Pass 1 of each server is
cold (nothing rendered yet, like a first sync); later passes are warm (what repeated syncs of a test see).
Run: python bench/sim_profiles.py [--scale 10] [--repeat 3] [--passes 3] [--clients 2]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
HEADERS = {"Authorization": "Klaviyo-API-Key pk_sim_demo_key", "revision": "2026-07-15"}
PARAMS = {"page[size]": "100", "additional-fields[profile]": "subscriptions,predictive_analytics"}
SORTS = ["updated", "-updated", "created", "-created", "id", "-id"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(scale: float, cpu: int) -> tuple[subprocess.Popen, str]:
    """A simulator process pinned to `cpu` from birth, so every thread it starts stays there."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # The child inherits our affinity at fork (pinning its pid afterwards would miss threads already started).
    ours = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        server = subprocess.Popen([sys.executable, "-m", "klaviyo_sim", "--port", str(port), "--scale", str(scale),
                                   "--now", "2026-09-01T00:00:00Z"], cwd=ROOT, stdout=subprocess.DEVNULL)
    finally:
        os.sched_setaffinity(0, ours)
    for _ in range(600):
        try:
            requests.get(f"{url}/_sim/health", timeout=1)
            return server, url
        except requests.ConnectionError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("simulator did not start")


class _Pass:
    """One pass: every profile fetched once, shared by the pagers; ends when together they have them all."""

    def __init__(self, url: str, expected: int) -> None:
        self.url, self.expected = url, expected
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.errors: list[str] = []

    def pager(self, sort: str) -> None:
        """Page in `sort` order until the pass is complete; a repeated id would flatter the figure, so fail."""
        session = requests.Session()
        own: set[str] = set()
        next_url, query = f"{self.url}/api/profiles", {**PARAMS, "sort": sort}
        try:
            while next_url and not self.done.is_set():
                response = session.get(next_url, params=query, headers=HEADERS, timeout=60)
                response.raise_for_status()
                body = response.json()
                ids = [obj["id"] for obj in body["data"]]
                if own.intersection(ids):
                    raise RuntimeError(f"sort {sort}: an id came back twice")
                own.update(ids)
                with self.lock:
                    self.seen.update(ids)
                    if len(self.seen) >= self.expected:
                        self.done.set()
                next_url, query = body["links"]["next"], None
        except Exception as err:  # noqa: BLE001 - reported by run(), which fails the benchmark
            self.errors.append(f"{sort}: {err!r}")
            self.done.set()

    def run(self, clients: int) -> float:
        """Distinct profiles / wall seconds, the clock stopped after the last in-flight page has arrived."""
        # Opposite sort orders (updated, -updated) meet in the middle, so a cold pass renders each profile ~once.
        threads = [threading.Thread(target=self.pager, args=(SORTS[k % len(SORTS)],)) for k in range(clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        if self.errors or len(self.seen) != self.expected:
            raise RuntimeError(f"pass failed: {len(self.seen)} of {self.expected} profiles; {self.errors}")
        return len(self.seen) / elapsed


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (Linux /proc), to measure what one core of server serves."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _summary(label: str, rates: list[float]) -> str:
    return (f"{label}: median {statistics.median(rates):,.0f} records/s "
            f"(min {min(rates):,.0f}, max {max(rates):,.0f}, n={len(rates)})")


def main() -> None:
    """Run the repetitions and print each pass plus cold and warm medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=10.0, help="1,000 profiles per unit (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh servers (default 3)")
    parser.add_argument("--passes", type=int, default=3, help="full passes per server; the first is cold")
    parser.add_argument("--clients", type=int, default=2, help="concurrent pagers (1 = strictly serial)")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = cpus[-1]
    # The client gets the other CPUs so it never competes with the server for its core.
    os.sched_setaffinity(0, set(cpus[:-1]) or {server_cpu})
    expected = round(1000 * args.scale)
    cold: list[float] = []
    warm: list[float] = []
    cold_core: list[float] = []
    warm_core: list[float] = []
    for rep in range(args.repeat):
        server, url = _start_server(args.scale, server_cpu)
        try:
            for k in range(args.passes):
                cpu_before = _cpu_seconds(server.pid)
                rate = _Pass(url, expected).run(args.clients)
                per_core = expected / max(_cpu_seconds(server.pid) - cpu_before, 1e-9)
                (warm if k else cold).append(rate)
                (warm_core if k else cold_core).append(per_core)
                print(f"server {rep + 1} pass {k + 1} ({'warm' if k else 'cold'}): {rate:,.0f} records/s wall, "
                      f"{per_core:,.0f} records per server CPU-second", flush=True)
        finally:
            server.terminate()
            server.wait()
    print(f"scale {args.scale} ({expected:,} profiles), {args.clients} client(s), server on CPU {server_cpu}, "
          f"client on CPUs {sorted(os.sched_getaffinity(0))}")
    print(_summary("cold (first pass), wall", cold))
    print(_summary("cold (first pass), per server core", cold_core))
    if warm:
        print(_summary("warm (later passes), wall", warm))
        print(_summary("warm (later passes), per server core", warm_core))


if __name__ == "__main__":
    main()
