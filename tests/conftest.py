"""Shared pytest setup: golden files, and cassettes replayed offline only."""

from __future__ import annotations

import pytest

from tests.klx_testing import ROOT

pytest_plugins = ["tests.golden_plugin"]


@pytest.fixture(scope="module")
def vcr_config() -> dict:
    """Replay only: a request missing from its cassette fails instead of reaching the network."""
    return {"filter_headers": ["authorization"], "record_mode": "none", "match_on": ["method", "scheme", "host", "port", "path", "query"]}


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    """Cassettes live in the top-level cassettes/ folder."""
    return str(ROOT / "cassettes")
