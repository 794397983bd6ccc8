"""Re-record every cassette in cassettes/ from the local simulator: `python -m tests.record_cassettes`.

Each cassette holds the klx runs of one scenario (tests/cassette_scenarios.py). The simulator's
address is rewritten to https://a.klaviyo.com in requests and in response bodies (links.next), so replay
exercises klx's real base URL, and the Authorization header is dropped before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import vcr

from engine.http import HttpClient
from tests.cassette_scenarios import CASSETTE_BASE_URL, cases, cassette_name, mutation, run_times, simulator
from tests.klx_testing import ROOT, sync, write_config

CASSETTES = ROOT / "cassettes"
TAGS_SPEC_EXTRA = """
  tags:
    path: /api/tags
    scopes: [tags:read]
    rate_limit: S
    page_size: 50
    primary_key: [id]
"""


def recorder(sim_url: str) -> vcr.VCR:
    """A VCR that records everything, moved to Klaviyo's base URL, without credentials."""

    def request(req: Any) -> Any:
        req.uri = req.uri.replace(sim_url, CASSETTE_BASE_URL)
        return req

    def response(resp: dict[str, Any]) -> dict[str, Any]:
        body = resp["body"]["string"].replace(sim_url.encode(), CASSETTE_BASE_URL.encode())
        resp["body"]["string"] = body
        headers = {k: v for k, v in resp["headers"].items() if k.lower() != "content-length"}
        headers["Content-Length"] = [str(len(body))]
        resp["headers"] = headers
        return resp

    return vcr.VCR(
        record_mode="all",
        filter_headers=["authorization"],
        before_record_request=request,
        before_record_response=response,
        match_on=["method", "scheme", "host", "port", "path", "query"],
    )


@contextlib.contextmanager
def one_request_at_a_time() -> Iterator[None]:
    """klx's requests made one after another while recording.

    vcrpy sends a recorded request inside `force_reset()`, which unpatches the connection classes for the
    whole process: a connection another thread opens meanwhile is a real one, and its requests are never
    recorded (concurrent time slices lost about one request in thirty). Replay needs no such care.
    """
    real_get, lock = HttpClient.get, threading.Lock()

    def get(self: HttpClient, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return real_get(self, *args, **kwargs)

    HttpClient.get = get  # type: ignore[method-assign]
    try:
        yield
    finally:
        HttpClient.get = real_get  # type: ignore[method-assign]


def record(name: str, scenario: Callable[[str, Path, Any], None]) -> Path:
    """Run `scenario(sim_url, workdir, sim)` against a fresh simulator while recording cassettes/<name>.yaml."""
    path = CASSETTES / f"{name}.yaml"
    path.unlink(missing_ok=True)
    sim = simulator()
    sim.start()
    try:
        with tempfile.TemporaryDirectory() as work, recorder(sim.url).use_cassette(str(path)), one_request_at_a_time():
            scenario(sim.url, Path(work), sim)
    finally:
        sim.stop()
    return path


def resource_scenario(resource: str, mode: str) -> Callable[[str, Path, Any], None]:
    """A first run, then (where the resource changes) a mutation and a second run."""

    def scenario(url: str, work: Path, sim: Any) -> None:
        config = write_config(work, {resource: mode}, base_url=url, database=work / "klx.duckdb")
        first, _ = run_times(sim)
        sync(config, sim.api_key, now=first)
        change = mutation(resource, mode)
        if change is not None:
            change.apply(sim)
            sync(config, sim.api_key, now=run_times(sim)[1])

    return scenario


def tags_scenario(url: str, work: Path, sim: Any) -> None:
    """One full refresh of a stream that exists only in a copy of the spec (tests/test_add_resource.py)."""
    spec = work / "klaviyo.yaml"
    spec.write_text((ROOT / "specs" / "klaviyo.yaml").read_text() + TAGS_SPEC_EXTRA)
    config = write_config(work, {"tags": "full_refresh"}, base_url=url, database=work / "klx.duckdb", spec=spec)
    sync(config, sim.api_key, now=run_times(sim)[0])


def main(argv: list[str] | None = None) -> int:
    """Record the cassettes named on the command line (default: all)."""
    parser = argparse.ArgumentParser(prog="python -m tests.record_cassettes", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="cassette names, e.g. profiles-incremental (default: all)")
    args = parser.parse_args(argv)
    CASSETTES.mkdir(exist_ok=True)
    scenarios = {cassette_name(r, m): resource_scenario(r, m) for r, m in cases()}
    scenarios["tags-full_refresh"] = tags_scenario
    unknown = [n for n in args.names if n not in scenarios]
    if unknown:
        parser.error(f"unknown cassette {unknown[0]!r}; known: {', '.join(sorted(scenarios))}")
    for name in args.names or sorted(scenarios):
        path = record(name, scenarios[name])
        print(f"recorded {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
