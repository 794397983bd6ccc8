"""Shared pytest setup: parallel runs, golden files, no skips under CI=true, cassettes replayed offline and played in full."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.klx_testing import ROOT

pytest_plugins = ["tests.golden_plugin", "tests.ci_policy"]


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many workers `-n auto` (pyproject's addopts) starts: one per core, none when the run names one file.

    One file runs in this process, where -s, --pdb and breakpoint() work as usual; `--dist loadfile` would
    give it a single worker anyway. PYTEST_XDIST_AUTO_NUM_WORKERS overrides, as in pytest-xdist itself.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").isdigit():
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    files = {arg.split("::")[0] for arg in config.args}
    if len(files) == 1 and Path(config.invocation_params.dir, *files).is_file():
        return 0
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@pytest.fixture(scope="session", autouse=True)
def vcr_connections_made_one_at_a_time() -> Iterator[None]:
    """vcrpy is not thread-safe: each replayed connection it makes puts the real connection classes back for a
    moment (vcr.patch.force_reset), process-wide. A klx run opens connections on several threads at once, and
    one opened in that moment was a real one: its request left for a.klaviyo.com (in 6 of 20 replays of the
    events cassette). Here a pool makes its connection, and vcrpy resets its classes, under one lock."""
    import threading

    import urllib3.connectionpool
    import vcr.patch

    lock = threading.RLock()  # re-entered: vcrpy's connection, made inside _new_conn, resets inside its __init__
    reset = vcr.patch.force_reset
    pools = (urllib3.connectionpool.HTTPConnectionPool, urllib3.connectionpool.HTTPSConnectionPool)  # each its own _new_conn
    made = {pool: pool.__dict__["_new_conn"] for pool in pools}

    @contextlib.contextmanager
    def force_reset() -> Iterator[None]:
        with lock, reset():
            yield

    def locked(new_conn: Any) -> Any:
        def _new_conn(self: Any) -> Any:
            with lock:
                return new_conn(self)

        return _new_conn

    vcr.patch.force_reset = force_reset  # (vcrpy imports it at each use)
    for pool, new_conn in made.items():
        pool._new_conn = locked(new_conn)
    try:
        yield
    finally:
        vcr.patch.force_reset = reset
        for pool, new_conn in made.items():
            pool._new_conn = new_conn


@pytest.fixture(scope="module")
def vcr_config() -> dict:
    """Replay only: a request missing from its cassette fails instead of reaching the network."""
    return {"filter_headers": ["authorization"], "record_mode": "none", "match_on": ["method", "scheme", "host", "port", "path", "query"]}


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    """Cassettes live in the top-level cassettes/ folder."""
    return str(ROOT / "cassettes")


@pytest.fixture(autouse=True)
def every_recorded_interaction_is_played(vcr):
    """A cassette replay must use the whole cassette: a request klx no longer makes is a lost page."""
    yield
    if vcr is not None and not vcr.all_played:
        unplayed = [vcr.requests[i].uri for i in range(len(vcr)) if not vcr.play_counts[i]]
        pytest.fail(f"{len(unplayed)} of {len(vcr)} recorded requests in this test's cassette were never made, e.g. {unplayed[0]}")
