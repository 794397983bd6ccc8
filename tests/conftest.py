"""Shared pytest setup: golden files, no skips under CI=true, cassettes replayed offline and played in full."""

from __future__ import annotations

import pytest

from tests.klx_testing import ROOT

pytest_plugins = ["tests.golden_plugin", "tests.ci_policy"]


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
