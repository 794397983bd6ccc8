"""Benchmark (run by hand, not a test): 429s drawn by the predictive-analytics profile reads, with rate limits on.

    python bench/rate_buckets.py --scale 3

Syncs profiles, global_exclusions and segments_profiles against an in-process simulator enforcing Klaviyo's
limits, once with the shipped spec (predictive reads share one 10/s, 150/m bucket) and once with the
`rate_limit_buckets` block removed (each path budgets only its own L tier). Prints requests, 429s and time.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from klaviyo_sim import Simulator  # noqa: E402
from tests.klx_testing import SIM_NOW, sync, write_config  # noqa: E402

RESOURCES = {"profiles": "full_refresh", "global_exclusions": "full_refresh", "segments_profiles": "full_refresh"}
_BUCKETS = re.compile(r"  rate_limit_buckets:\n(?:    .*\n|      .*\n)+")


def measure(scale: float, spec: Path | None, work: Path) -> tuple[int, int, float]:
    """(requests, 429s, seconds) of one sync of RESOURCES."""
    with Simulator(seed=3, scale=scale, now=SIM_NOW, rate_limits=True) as sim:
        config = write_config(work, RESOURCES, base_url=sim.url, database=work / "bench.duckdb", spec=spec)
        began = time.perf_counter()
        sync(config, sim.api_key, now=SIM_NOW, sleep=time.sleep)
        return len(sim.request_log), sim.limiter.refused, time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        without = work / "no-buckets.yaml"
        text = (ROOT / "specs" / "klaviyo.yaml").read_text()
        without.write_text(_BUCKETS.sub("", text))
        for label, spec in (("shared bucket (shipped spec)", None), ("per-path tiers only", without)):
            (work / label[:6]).mkdir()
            requests, refused, seconds = measure(args.scale, spec, work / label[:6])
            print(f"{label:<30} {requests:>5} requests {refused:>4} x 429 {seconds:>7.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
