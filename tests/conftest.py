"""Shared pytest setup: parallel runs, golden files, no skips under CI=true, cassettes replayed offline and played in full."""

from __future__ import annotations

import os
from pathlib import Path

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
