"""A run paces Python's garbage collector (engine/collection.py) and its thread switching (engine/switching.py), and
gives the caller's settings back."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

from engine import collection, switching
from engine.config import Config
from engine.run import run
from klaviyo_sim import Simulator
from tests.klx_testing import SIM_NOW, write_config


@pytest.mark.parametrize("fails", [False, True])
def test_a_run_collects_less_often_and_switches_threads_sooner_while_it_lasts_then_restores_both(tmp_path: Path, fails: bool) -> None:
    before, interval = gc.get_threshold(), sys.getswitchinterval()
    seen: list[tuple[tuple[int, ...], float]] = []

    def during(_summary: object) -> None:
        seen.append((gc.get_threshold(), sys.getswitchinterval()))
        if fails:
            raise RuntimeError("the caller's callback failed")

    with Simulator(seed=1, scale=0.02, now=SIM_NOW) as sim:
        config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=sim.url, database=tmp_path / "w.duckdb")
        loaded = Config.from_yaml(config, env={"KLAVIYO_API_KEY": "pk_sim_demo_key"})
        if fails:
            with pytest.raises(RuntimeError):
                run(loaded, now=SIM_NOW, on_stream=during)
        else:
            assert not run(loaded, now=SIM_NOW, on_stream=during).failed
    assert seen == [(collection.RUN_THRESHOLDS, switching.RUN_SWITCH_INTERVAL)]
    assert collection.RUN_THRESHOLDS != before and switching.RUN_SWITCH_INTERVAL != interval
    assert (gc.get_threshold(), sys.getswitchinterval()) == (before, interval)
