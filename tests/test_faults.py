"""Fault suite: 10% faults of every kind, rate limits, `kill -9` of `klx run` mid-sync; then every table equals the truth."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from klaviyo_sim import FaultConfig, Simulator
from klaviyo_sim.faults import KINDS
from tests.klx_testing import ALL_RESOURCES, ROOT, START_DATE, default_modes, key_of, rows, sync, write_config

CURSOR = {"campaigns": "updated_at", "events": "datetime"}
NO_CURSOR = ("metrics", "segments_profiles")
MUTABLE = ("campaigns", "email_templates", "flows", "lists", "segments", "profiles")


def klx_run(config: Path, api_key: str, *args: str) -> subprocess.Popen:
    """`klx run CONFIG` in its own process, as a scheduler would start it."""
    env = {**os.environ, "KLAVIYO_API_KEY": api_key, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", str(config), *args],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def kill_after_requests(sim: Simulator, process: subprocess.Popen, requests: int, timeout: float = 30.0) -> bool:
    """SIGKILL `process` once the simulator has seen `requests` more API requests; False if it finished first."""
    target = len(sim.request_log) + requests
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if len(sim.request_log) >= target or time.monotonic() > deadline:
            process.send_signal(signal.SIGKILL)
            process.communicate()
            assert time.monotonic() <= deadline, f"klx run took over {timeout:.0f}s; killed"
            return True
        time.sleep(0.005)
    process.communicate()
    return False


def assert_tables_equal_truth(sim: Simulator, database: Path) -> None:
    tables = {r["table_name"] for r in rows(database, "select table_name from information_schema.tables")}
    assert not [t for t in tables if t.endswith("__klx_shadow")], "a killed full refresh's shadow table survived"
    for resource in ALL_RESOURCES:
        truth = sim.truth(resource, START_DATE)
        landed = rows(database, f'select * from "kl_rudder_{resource}"')
        assert len(truth) > 0, resource
        assert sorted(key_of(resource, r) for r in landed) == sorted(key_of(resource, t) for t in truth), resource
        if resource not in NO_CURSOR:
            cursor = CURSOR.get(resource, "updated")
            expected = {key_of(resource, t): datetime.fromisoformat(t["cursor"]) for t in truth}
            assert {key_of(resource, r): r[cursor] for r in landed} == expected, resource


@pytest.mark.parametrize("seed", [11])
def test_kill_9_during_incremental_and_full_refresh_runs_under_faults_loses_nothing(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    faults = FaultConfig(rate=0.1, kinds=KINDS, seed=seed, slow_seconds=0.2)
    with Simulator(seed=seed, scale=0.05, rate_limits=True, faults=faults) as sim:
        database = tmp_path / "klx.duckdb"
        config = write_config(tmp_path, default_modes(), base_url=sim.url, database=database)
        kills = 0
        # A first sync killed part way, then changes at the source and a second one killed, then a full
        # refresh killed while it fills its shadow tables: each leaves committed batches and open transactions.
        for args, mutate in (((), False), ((), True), (("--full-refresh",), True)):
            if mutate:
                for resource in MUTABLE:
                    sim.mutate(resource, update=2, create=1)
                sim.mutate("events", create=3)
            kills += kill_after_requests(sim, klx_run(config, sim.api_key, *args), rng.randint(3, 22))
        assert kills >= 2, "the runs ended before the planned kills: raise the request counts' range"
        summary = sync(config, sim.api_key, sleep=time.sleep)  # the clean run, still under faults and limits
        assert summary.failed == [] and summary.rejected == 0
        assert_tables_equal_truth(sim, database)


def test_a_killed_run_leaves_the_database_usable_and_its_state_consistent(tmp_path: Path) -> None:
    with Simulator(seed=4, scale=0.05) as sim:
        database = tmp_path / "klx.duckdb"
        config = write_config(tmp_path, {"events": "incremental", "profiles": "incremental"}, base_url=sim.url, database=database)
        sim.latency = 0.02  # slow enough that the kill lands mid-stream
        assert kill_after_requests(sim, klx_run(config, sim.api_key), 2)
        sim.latency = 0.0
        # Whatever committed before the kill is whole: every stored row is a truth row.
        tables = {r["table_name"] for r in rows(database, "select table_name from information_schema.tables")}
        for resource in ("events", "profiles"):
            if f"kl_rudder_{resource}" in tables:
                truth = {key_of(resource, t) for t in sim.truth(resource, START_DATE)}
                assert {key_of(resource, r) for r in rows(database, f'select id from "kl_rudder_{resource}"')} <= truth
        assert sync(config, sim.api_key).failed == []
        assert {r["id"] for r in rows(database, "select id from kl_rudder_profiles")} == {t["id"] for t in sim.truth("profiles", START_DATE)}
