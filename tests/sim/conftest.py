"""Shared simulator fixture: one server per module on 127.0.0.1, never touching the internet."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from klaviyo_sim import Simulator

NOW = datetime(2026, 9, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """Scale 0.5: 500 profiles and 5,000 events, enough for both tie clusters."""
    with Simulator(seed=7, scale=0.5, now=NOW) as simulator:
        yield simulator
