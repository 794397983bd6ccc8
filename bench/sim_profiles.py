"""Benchmark: profile records/s served by klaviyo_sim on one core (page size 100, with additional fields).

The server runs in its own process (one core: one Python interpreter, zero latency). The client runs here
with --clients concurrent pagers (default 2, each syncing all profiles in a different sort order) so the
server is not idle while a client parses JSON; --clients 1 gives the strictly serial figure.
Run: python bench/sim_profiles.py [--scale 10] [--seconds 5] [--clients 2]
"""

from __future__ import annotations

import argparse
import socket
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


def main() -> None:
    """Start `python -m klaviyo_sim`, page through /api/profiles for a while, print records/s."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "klaviyo_sim", "--port", str(port), "--scale", str(args.scale),
                               "--now", "2026-09-01T00:00:00Z"], cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                requests.get(f"{url}/_sim/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        counts: list[int] = []
        stop = time.perf_counter() + args.seconds

        def pager(sort: str) -> None:
            session = requests.Session()
            records = 0
            first = {**PARAMS, "sort": sort}
            next_url, query = f"{url}/api/profiles", first
            while time.perf_counter() < stop:
                body = session.get(next_url, params=query, headers=HEADERS, timeout=30).json()
                records += len(body["data"])
                nxt = body["links"]["next"]
                next_url, query = (nxt, None) if nxt else (f"{url}/api/profiles", first)
            counts.append(records)

        start = time.perf_counter()
        threads = [threading.Thread(target=pager, args=(SORTS[k % len(SORTS)],)) for k in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait()
    total = sum(counts)
    print(f"scale {args.scale}, {args.clients} client(s): {total} profiles in {elapsed:.1f}s = "
          f"{total / elapsed:,.0f} records/s")


if __name__ == "__main__":
    main()
