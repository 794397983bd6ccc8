"""Benchmark (run by hand, not a test): Airbyte's Klaviyo connector and klx on the same simulator and machine.

Install Airbyte's connector once, outside the repo (its code is never committed here; this script runs the
installed copy), in a venv beside the checkout (or anywhere, then pass --venv):

    python3 -m venv ../airbyte-venv && ../airbyte-venv/bin/pip install airbyte-source-klaviyo==2.13.1

then

    python bench/airbyte.py --scale 1
    python bench/airbyte.py --scale 10
    python bench/airbyte.py --scale 10 --no-api-budget    # without the connector's own client-side rate limiter
    python bench/airbyte.py --scale 10 --warm    # the simulator's rendering taken out of both timed runs
    python bench/airbyte.py --scale 10 --warm --repeat 3    # three timed rounds, the order alternating

--warm: on a real account the server's work is Klaviyo's, not this machine's. Cold, the simulator renders
every record while the client runs (for klx at scale 10 it burns about as much CPU as klx does), so on two
cores the measured client competes with the stand-in. With --warm the simulator keeps each body it renders
(klaviyo_sim --cache-responses) and each tool runs once untimed, so its timed run is served from memory.

One simulator (python -m klaviyo_sim, started as bench/run.py starts it) serves both, at zero latency and
without rate limits unless asked. Both read events and profiles, full refresh, from the same start date.

Airbyte: the connector's installed manifest.yaml with url_base pointed at the simulator, run by airbyte-cdk's
declarative source entry point (`read --config --catalog`, the connector's own defaults: num_workers, its
api_budget) in the connector venv's Python. Its stdout (Airbyte protocol messages, one JSON a line) is read
by this script, which counts RECORD messages per stream and loads them nowhere: no destination is part of
Airbyte's figure, as none was in the one the issue quotes. klx: one `klx run` (bench/run.py's run_klx), so
its figure includes flattening and loading every record into DuckDB.

--repeat N: N timed rounds of both tools, the first tool alternating from round to round (Airbyte first in the
first), each run into a fresh directory. On a shared machine one round's ratio moves by a third (13.65x-18.38x
in three single runs, bench/README.md Session 11), mostly with Airbyte's own figure; each tool's best run is
the one the machine disturbed least, so the ratio of the two best runs is the figure to compare, printed with
every round's own ratio and the median.

Printed for each: records per stream (and what the simulator says a correct sync returns), wall time from
process start to exit (imports included), records/s, CPU seconds and records per CPU second, peak RSS of its
process tree (the larger of wait4's ru_maxrss and the tree's summed VmRSS sampled every 0.1 s), the /api
requests the simulator served it and the simulator's own CPU seconds meanwhile (on a 2-core machine the two
compete); then klx / Airbyte records/s. Exit 1 when either run's counts differ from the simulator's truth.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import API_KEY, run_klx, start_simulator  # noqa: E402
from tests.klx_testing import START_DATE, write_config  # noqa: E402

STREAMS = ("events", "profiles")
CONNECTOR = "airbyte-source-klaviyo==2.13.1"

# Runs in the connector venv's Python: the installed manifest, url_base replaced, through airbyte-cdk's entry point.
RUNNER = """
import sys
from importlib import resources
import yaml
from airbyte_cdk.entrypoint import launch
from airbyte_cdk.sources.declarative.concurrent_declarative_source import ConcurrentDeclarativeSource

url, config_path, catalog_path, budget = sys.argv[1:5]
manifest = yaml.safe_load(resources.files("source_klaviyo").joinpath("manifest.yaml").read_text())
manifest["definitions"]["requester"]["url_base"] = url
if budget == "off":
    manifest.pop("api_budget", None)
source = ConcurrentDeclarativeSource(ConcurrentDeclarativeSource.read_catalog(catalog_path),
                                     ConcurrentDeclarativeSource.read_config(config_path), None, source_config=manifest)
launch(source, ["read", "--config", config_path, "--catalog", catalog_path])
"""

RECORD_PREFIX = b'{"type":"RECORD","record":{"stream":"'


@dataclass
class Measured:
    """One tool's run: records per stream, wall and CPU seconds, peak RSS in bytes, exit code."""
    records: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0
    cpu: float = 0.0
    rss: int = 0
    code: int = 0
    note: str = ""
    requests: int = 0
    sim_cpu: float = 0.0
    first_record: float | None = None

    @property
    def total(self) -> int:
        return sum(self.records.values())


def connector_python(venv: Path) -> Path:
    """The venv's python, once it imports the connector and airbyte-cdk; otherwise exit with one line."""
    python = venv / "bin" / "python"
    install = f"python3 -m venv {venv} && {venv}/bin/pip install {CONNECTOR}"
    if not python.exists():
        raise SystemExit(f"bench/airbyte.py: no Airbyte connector venv at {venv} (install it: {install})")
    probe = subprocess.run([str(python), "-c", "import source_klaviyo, airbyte_cdk"], capture_output=True, text=True)
    if probe.returncode:
        raise SystemExit(f"bench/airbyte.py: {python} cannot import source_klaviyo/airbyte_cdk (install it: {install})")
    return python


def tree_rss(pid: int) -> int:
    """Summed VmRSS in bytes of `pid` and its descendants (0 once gone)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


class TreeSampler(threading.Thread):
    """Peak summed RSS of a process tree, sampled every 0.1 s until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopped = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.1):
            self.peak = max(self.peak, tree_rss(self.pid))


def run_airbyte(python: Path, url: str, work: Path, *, budget: bool, num_workers: int | None, predictive: bool = True) -> Measured:
    """Run the connector against `url`; count the RECORD messages it prints, per stream."""
    config = {"api_key": API_KEY, "start_date": f"{START_DATE}T00:00:00Z"}
    if not predictive:
        config["disable_fetching_predictive_analytics"] = True
    if num_workers:
        config["num_workers"] = num_workers
    catalog = {"streams": [{"stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
                            "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"} for name in STREAMS]}
    (work / "airbyte-config.json").write_text(json.dumps(config))
    (work / "airbyte-catalog.json").write_text(json.dumps(catalog))
    measured = Measured(records={name: 0 for name in STREAMS})
    errors: list[str] = []
    command = [str(python), "-c", RUNNER, f"{url}/api/", str(work / "airbyte-config.json"), str(work / "airbyte-catalog.json"),
               "on" if budget else "off"]
    began = time.perf_counter()
    with (work / "airbyte.stderr").open("wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, bufsize=1 << 20)
        sampler = TreeSampler(process.pid)
        sampler.start()
        for line in process.stdout:
            if measured.first_record is None and line.startswith(b'{"type":"RECORD"'):
                measured.first_record = time.perf_counter() - began
            if line.startswith(RECORD_PREFIX):
                stream = line[len(RECORD_PREFIX):line.index(b'"', len(RECORD_PREFIX))].decode()
                measured.records[stream] = measured.records.get(stream, 0) + 1
            elif line.startswith(b'{"type":"RECORD"'):
                stream = json.loads(line)["record"]["stream"]
                measured.records[stream] = measured.records.get(stream, 0) + 1
            elif b'"type":"TRACE"' in line and b'"type":"ERROR"' in line:
                errors.append(json.loads(line)["trace"]["error"]["message"])
        _, status, usage = os.wait4(process.pid, 0)
        measured.wall = time.perf_counter() - began
        sampler.stopped.set()
        sampler.join()
    process.returncode = measured.code = os.waitstatus_to_exitcode(status)
    measured.cpu = usage.ru_utime + usage.ru_stime
    measured.rss = max(usage.ru_maxrss * 1024, sampler.peak)
    if errors or measured.code:
        measured.note = "; ".join(errors)[:500] or (work / "airbyte.stderr").read_text()[-1000:]
    return measured


def run_klx_measured(url: str, work: Path, predictive: bool = True) -> Measured:
    """One `klx run` of the same streams into DuckDB (bench/run.py's run_klx), with its report's counts."""
    modes = {name: "full_refresh" for name in STREAMS}
    if not predictive:
        modes["profiles"] = "{sync_mode: full_refresh, leave_out: [predictive_analytics]}"
    config = write_config(work, modes, base_url=url, database=work / "bench.duckdb")
    wall, rss_kib, code, _samples, cpu = run_klx(config, work / "report.json", work / "klx.log")
    report = json.loads((work / "report.json").read_text()) if (work / "report.json").exists() else {"streams": []}
    measured = Measured(records={s["stream"]: s["records"] for s in report["streams"]}, wall=wall, rss=rss_kib * 1024, code=code, cpu=cpu)
    if code:
        measured.note = (work / "klx.log").read_text()[-1000:]
    return measured


def truth_counts(url: str) -> dict[str, int]:
    """What a correct sync of each stream returns, from the simulator."""
    return {name: len(requests.get(f"{url}/_sim/truth", params={"resource": name, "start_date": f"{START_DATE}T00:00:00Z"},
                                   timeout=600).json()["records"]) for name in STREAMS}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used so far (the simulator's serving cost)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_against(server: subprocess.Popen, url: str, run) -> Measured:
    """`run()`, with the simulator's CPU seconds and the /api requests it served meanwhile."""
    requests.delete(f"{url}/_sim/requests", timeout=10)
    before = cpu_seconds(server.pid)
    measured = run()
    measured.sim_cpu = cpu_seconds(server.pid) - before
    measured.requests = len(requests.get(f"{url}/_sim/requests", timeout=60).json()["requests"])
    return measured


def rate(m: Measured) -> float:
    """Records a second of wall time."""
    return m.total / m.wall if m.wall else 0.0


def show(name: str, m: Measured, truth: dict[str, int]) -> None:
    counts = ", ".join(f"{s} {m.records.get(s, 0):,}" + ("" if m.records.get(s, 0) == truth[s] else f" (expected {truth[s]:,})")
                       for s in STREAMS)
    per_cpu = m.total / m.cpu if m.cpu else 0.0
    print(f"{name:<10} {m.total:>9,} {m.wall:>8.1f} {rate(m):>9,.0f} {m.cpu:>8.1f} {per_cpu:>9,.0f} {m.rss / 2**20:>8.0f} "
          f"{m.requests:>9,} {m.sim_cpu:>8.1f}   exit {m.code}; {counts}")
    if m.first_record is not None:
        print(f"         first record after {m.first_record:.1f} s (imports, manifest validation, first page)")
    if m.note:
        print(f"         {name} said: {m.note.strip()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added by the simulator to every request")
    parser.add_argument("--rate-limits", choices=("klaviyo", "off"), default="off", help="the simulator's 429s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--venv", type=Path, default=Path(os.environ.get("AIRBYTE_VENV", ROOT.parent / "airbyte-venv")),
                        help="venv holding airbyte-source-klaviyo (default $AIRBYTE_VENV or ../airbyte-venv)")
    parser.add_argument("--no-api-budget", action="store_true", help="drop the connector manifest's client-side api_budget")
    parser.add_argument("--num-workers", type=int, help="the connector's num_workers (default: its own)")
    parser.add_argument("--without-predictive-analytics", action="store_true",
                        help="neither tool asks for profiles' predictive_analytics (Airbyte: disable_fetching_predictive_analytics; "
                             "klx: leave_out), so profile reads skip Klaviyo's 10/s, 150/m predictive-analytics budget, which "
                             "both tools pace themselves to and which otherwise sets the run's floor (100 profile pages: 9.9 s)")
    parser.add_argument("--only", choices=("airbyte", "klx"), help="run one of the two")
    parser.add_argument("--repeat", type=int, default=1, help="timed rounds of both tools, the order alternating")
    parser.add_argument("--warm", action="store_true",
                        help="the simulator keeps the bodies it renders (--cache-responses) and each tool runs once untimed "
                             "first: the timed runs then measure the client, not the stand-in's rendering")
    args = parser.parse_args()
    if args.warm and args.rate_limits != "off":
        parser.error("--warm needs --rate-limits off: the untimed runs would spend the timed runs' rate budget")
    args.limit_fraction = 1.0
    python = connector_python(args.venv.resolve()) if args.only != "klx" else None
    server, url = start_simulator(args)
    try:
        truth = truth_counts(url)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            def airbyte_run(into: Path) -> Measured:
                return run_airbyte(python, url, into, budget=not args.no_api_budget, num_workers=args.num_workers,
                                   predictive=not args.without_predictive_analytics)

            def klx_run(into: Path) -> Measured:
                return run_klx_measured(url, into, predictive=not args.without_predictive_analytics)

            for name, once in (("airbyte", airbyte_run), ("klx", klx_run)) if args.warm else ():
                if args.only in (None, name) and (name != "airbyte" or python):
                    (work / f"warm-{name}").mkdir()
                    print(f"warming the simulator's response cache with one untimed {name} run ...", flush=True)
                    once(work / f"warm-{name}")
            airbyte_runs: list[Measured] = []
            klx_runs: list[Measured] = []
            tools = [("airbyte", airbyte_run, airbyte_runs)] if python else []
            tools += [("klx", klx_run, klx_runs)] if args.only != "airbyte" else []
            for round_ in range(args.repeat):
                for name, once, into in tools if round_ % 2 == 0 else reversed(tools):
                    (work / f"{name}-{round_}").mkdir()
                    into.append(measure_against(server, url, lambda: once(work / f"{name}-{round_}")))
        limits = requests.get(f"{url}/_sim/limits", timeout=10).json()
    finally:
        server.terminate()
        server.wait()
    print(f"scale {args.scale:g}, latency {args.latency_ms:g} ms, simulator {'warm (responses cached)' if args.warm else 'cold'}, "
          f"rate limits {args.rate_limits} "
          f"({limits['refused']} 429s), streams {','.join(STREAMS)} full refresh from {START_DATE}"
          + (", profiles without predictive_analytics" if args.without_predictive_analytics else "")
          + (f"; Airbyte api_budget {'off' if args.no_api_budget else 'on'}, num_workers {args.num_workers or 'default'}"
             if airbyte_runs else ""))
    print(f"\n{'':<10} {'records':>9} {'wall s':>8} {'rec/s':>9} {'CPU s':>8} {'rec/CPU s':>9} {'RSS MB':>8} "
          f"{'requests':>9} {'sim CPU':>8}")
    for round_ in range(args.repeat):
        for name, runs in (("airbyte", airbyte_runs), ("klx", klx_runs)):
            if runs:
                show(name if args.repeat == 1 else f"{name} {round_ + 1}", runs[round_], truth)
    # Each tool's best run by wall time (the least disturbed); the per-CPU figure takes each tool's cheapest run.
    airbyte = min(airbyte_runs, key=lambda m: m.wall, default=None)
    klx = min(klx_runs, key=lambda m: m.wall, default=None)
    if airbyte and klx and airbyte.total and airbyte.wall and klx.wall:
        ratio = rate(klx) / rate(airbyte)
        best = " of the best runs" if args.repeat > 1 else ""
        print(f"\nklx / Airbyte records/s{best}: {ratio:.2f}x (issue 10's target: at least 15x; klx peak RSS at most 200 MB). "
              "Airbyte's records go nowhere; klx's are loaded into DuckDB.")
        if args.repeat > 1:
            rounds = [rate(k) / rate(a) for a, k in zip(airbyte_runs, klx_runs)]  # in round order
            print(f"each round's own: {', '.join(f'{r:.2f}x' for r in rounds)} (median {statistics.median(rounds):.2f}x); "
                  f"klx peak RSS {max(m.rss for m in klx_runs) / 2**20:.0f} MB at most")
        cheapest_airbyte = min(airbyte_runs, key=lambda m: m.cpu or float("inf"))
        cheapest_klx = min(klx_runs, key=lambda m: m.cpu or float("inf"))
        if cheapest_airbyte.cpu and cheapest_klx.cpu:
            print(f"klx / Airbyte records per CPU second: {(cheapest_klx.total / cheapest_klx.cpu) / (cheapest_airbyte.total / cheapest_airbyte.cpu):.2f}x "
                  "(less sensitive to the machine's load than wall time)")
    ran = [*airbyte_runs, *klx_runs]
    if any(m.records.get(s, 0) != truth[s] for m in ran for s in STREAMS):
        print("bench/airbyte.py: a run did not return what the simulator says a correct sync returns; its figure is not valid")
        return 1
    return max((m.code for m in ran), default=0)


if __name__ == "__main__":
    sys.exit(main())
