"""Benchmark (run by hand, not a test): the round trips a sync makes to Snowflake, and what they cost at a latency.

    python bench/snowflake_trips.py --scale 10 --latency-s 0.3 --batch-scales 1,8
    python bench/snowflake_trips.py --scale 0.1 --latency-s 0 --batch-scales 8 --later --streams <all ten>

The real Snowflake cannot be reached from here, so the sync runs against fakesnow (an emulation on DuckDB)
with `--latency-s` added to every statement the destination sends: what a remote service's round trips cost,
whatever it does with them. For each destination.batch_scale: the statements sent, by kind (as klx names
them in its errors), and the sync's wall time; the simulator is in process, with no latency or limits
(Klaviyo's side is not what is measured). Peak RSS includes fakesnow's DuckDB, which the real connector does
not hold.

Streams are read in full refresh; with --later, incrementally where the spec allows, and a second sync runs
in the same process after the first: the run a schedule repeats every hour or day. fakesnow's MERGE needs a
session schema, which it sets only when CREATE SCHEMA runs (a second connection has none: klx names every
table with its schema, so the real service needs none); the bench sets it with a USE SCHEMA after klx connects,
not counted. fakesnow cannot run `ALTER TABLE ... SWAP WITH`, so a later full refresh fails there at its
swap: its statements up to the swap are counted, and the failure is printed.
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


def one_sync(scale: float, streams: list[str], latency: float, batch_scale: int, later: bool) -> list[str]:
    """One sync (two with `later`) in this process (fakesnow patches the connector process-wide); a report line each."""
    sys.path.insert(0, str(ROOT))
    import fakesnow

    from engine import run as run_module
    from engine.config import Config
    from engine.destinations.snowflake import SnowflakeDestination
    from engine.destinations.warehouse import SqlDestination
    from engine.spec import Spec
    from klaviyo_sim import Simulator
    from tests.klx_testing import SIM_NOW

    kinds: collections.Counter[str] = collections.Counter()
    execute, ensure_schema = SqlDestination.execute, SnowflakeDestination.ensure_schema

    def delayed(self: SqlDestination, kind: str, table: str, *args: object, **kwargs: object) -> object:
        kinds[kind] += 1  # every statement a destination sends goes through execute()
        time.sleep(latency)
        return execute(self, kind, table, *args, **kwargs)

    def ensure_and_use(self: SnowflakeDestination) -> None:
        ensure_schema(self)
        with self.connection.cursor() as cursor:  # fakesnow's MERGE needs a session schema (see above); not counted
            cursor.execute(f"USE SCHEMA BENCH.{self.schema}")

    SqlDestination.execute = delayed  # type: ignore[method-assign]
    SnowflakeDestination.ensure_schema = ensure_and_use  # type: ignore[method-assign]
    spec = Spec.from_yaml(ROOT / "specs" / "klaviyo.yaml")
    modes = {name: "incremental" if later and "incremental" in spec.streams[name].sync_modes else "full_refresh" for name in streams}
    lines = []
    with tempfile.TemporaryDirectory() as folder, Simulator(seed=0, scale=scale, now=SIM_NOW) as sim, fakesnow.patch():
        config = Path(folder) / "snowflake.yaml"
        config.write_text("\n".join([
            "source:", "  api_key: ${KLAVIYO_API_KEY}", f"  base_url: {sim.url}", '  start_date: "2020-01-01"',
            "destination:", "  type: snowflake", "  table_prefix: kl_", "  account: bench", "  user: bench",
            "  password: x", "  database: BENCH", "  schema: klaviyo", f"  batch_scale: {batch_scale}",
            "resources:", *(f"  {name}: {mode}" for name, mode in modes.items()),
        ]) + "\n")
        for which in ("first run", "later run")[: 2 if later else 1]:
            kinds.clear()
            began = time.perf_counter()
            summary = run_module.run(Config.from_yaml(config, env={"KLAVIYO_API_KEY": sim.api_key}), now=SIM_NOW)
            seconds = time.perf_counter() - began
            failed = "".join(f"; {s.stream} failed: {s.error}" for s in summary.failed)
            if summary.failed and which == "first run":
                raise SystemExit(f"sync failed{failed}")
            trips = ", ".join(f"{kind} {n}" for kind, n in kinds.most_common())
            lines.append(f"batch_scale {batch_scale:>2}, {which}: {summary.events:,} records, {sum(kinds.values())} statements "
                         f"in {seconds:.1f} s ({trips}){failed}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return [*lines, f"peak RSS {peak} MB"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--streams", default="events,profiles")
    parser.add_argument("--latency-s", type=float, default=0.3, help="added to every statement sent to Snowflake")
    parser.add_argument("--batch-scales", default="1,8", help="comma list of destination.batch_scale values")
    parser.add_argument("--later", action="store_true", help="incremental where allowed, and a second sync after the first")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: one sync at this batch_scale
    args = parser.parse_args()
    streams = args.streams.split(",")
    if args.one is not None:
        print("\n".join(one_sync(args.scale, streams, args.latency_s, args.one, args.later)), flush=True)
        return
    modes = "incremental where allowed, two syncs" if args.later else "full refresh"
    print(f"scale {args.scale:g}, {', '.join(streams)}, {modes} into fakesnow, {args.latency_s:g} s a statement")
    for scale in (int(s) for s in args.batch_scales.split(",")):
        # Each in its own process: fakesnow's patch and peak RSS start fresh.
        subprocess.run([sys.executable, __file__, "--scale", str(args.scale), "--streams", args.streams,
                        "--latency-s", str(args.latency_s), *(["--later"] if args.later else []), "--one", str(scale)], check=True)


if __name__ == "__main__":
    main()
