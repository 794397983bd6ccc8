"""Benchmark (run by hand, not a test): the round trips a sync makes to Snowflake, and what they cost at a latency.

    python bench/snowflake_trips.py --scale 10 --latency-s 0.3 --batch-scales 1,8

The real Snowflake cannot be reached from here, so the sync runs against fakesnow (an emulation on DuckDB)
with `--latency-s` added to every statement the destination sends: what a remote service's round trips cost,
whatever it does with them. For each destination.batch_scale: the statements sent, by kind, and the sync's
wall time; the simulator is in process, with no latency or limits (Klaviyo's side is not what is measured).
Peak RSS includes fakesnow's DuckDB, which the real connector does not hold.
"""

from __future__ import annotations

import argparse
import collections
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_sync(scale: float, streams: list[str], latency: float, batch_scale: int) -> str:
    """One sync in this process (fakesnow patches the connector process-wide); its one-line report."""
    sys.path.insert(0, str(ROOT))
    import fakesnow

    from engine import run as run_module
    from engine.config import Config
    from engine.destinations.snowflake import SnowflakeDestination
    from klaviyo_sim import Simulator
    from tests.klx_testing import SIM_NOW

    kinds: collections.Counter[str] = collections.Counter()
    send = SnowflakeDestination.run_sql

    def delayed(self: SnowflakeDestination, text: str, params: object) -> object:
        kinds[text.split(None, 1)[0].upper()] += 1
        time.sleep(latency)
        return send(self, text, params)

    SnowflakeDestination.run_sql = delayed  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as folder, Simulator(seed=0, scale=scale, now=SIM_NOW) as sim, fakesnow.patch():
        config = Path(folder) / "snowflake.yaml"
        config.write_text("\n".join([
            "source:", "  api_key: ${KLAVIYO_API_KEY}", f"  base_url: {sim.url}", '  start_date: "2020-01-01"',
            "destination:", "  type: snowflake", "  table_prefix: kl_", "  account: bench", "  user: bench",
            "  password: x", "  database: BENCH", "  schema: klaviyo", f"  batch_scale: {batch_scale}",
            "resources:", *(f"  {name}: full_refresh" for name in streams),
        ]) + "\n")
        began = time.perf_counter()
        summary = run_module.run(Config.from_yaml(config, env={"KLAVIYO_API_KEY": sim.api_key}), now=SIM_NOW)
        seconds = time.perf_counter() - began
    if summary.failed:
        raise SystemExit(f"sync failed: {summary.failed[0].error}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    trips = ", ".join(f"{kind} {n}" for kind, n in kinds.most_common())
    return f"batch_scale {batch_scale:>2}: {summary.events:,} records, {sum(kinds.values())} statements in {seconds:.1f} s, peak {peak} MB ({trips})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--streams", default="events,profiles")
    parser.add_argument("--latency-s", type=float, default=0.3, help="added to every statement sent to Snowflake")
    parser.add_argument("--batch-scales", default="1,8", help="comma list of destination.batch_scale values")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: one sync at this batch_scale
    args = parser.parse_args()
    streams = args.streams.split(",")
    if args.one is not None:
        print(one_sync(args.scale, streams, args.latency_s, args.one), flush=True)
        return
    print(f"scale {args.scale:g}, {', '.join(streams)}, full refresh into fakesnow, {args.latency_s:g} s a statement")
    for scale in (int(s) for s in args.batch_scales.split(",")):
        # Each in its own process: fakesnow's patch and peak RSS start fresh.
        subprocess.run([sys.executable, __file__, "--scale", str(args.scale), "--streams", args.streams,
                        "--latency-s", str(args.latency_s), "--one", str(scale)], check=True)


if __name__ == "__main__":
    main()
