"""What klx sends Klaviyo: only parameters the revision's OpenAPI declares, and Klaviyo's own words on refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ApiError
from klaviyo_sim import Simulator
from klaviyo_sim.conformance import undeclared_params
from tests.klx_testing import ROOT, SIM_NOW, default_modes, sync, write_config


def test_every_parameter_klx_sends_is_declared_for_its_operation(tmp_path: Path) -> None:
    with Simulator(seed=2, scale=0.05, now=SIM_NOW) as sim:
        config = write_config(tmp_path, default_modes(), base_url=sim.url, database=tmp_path / "x.duckdb")
        sync(config, sim.api_key, now=SIM_NOW)
        log = list(sim.request_log)
    paths = {path.rstrip("/").split("/")[2] for _, path, _ in log}
    assert paths == {"campaigns", "templates", "events", "flows", "lists", "metrics", "segments", "profiles"}
    problems = {(path, name) for _, path, query in log for name in undeclared_params(path, query)}
    assert problems == set()


def test_an_operator_the_endpoint_refuses_surfaces_klaviyos_detail(tmp_path: Path) -> None:
    # /api/profiles accepts only greater-than on updated; a spec asking greater-or-equal gets a 400.
    spec = tmp_path / "klaviyo.yaml"
    text = (ROOT / "specs" / "klaviyo.yaml").read_text()
    old = "      lower: gt\n      granularity: 1s\n    sync_modes: [full_refresh, incremental]\n\n  global_exclusions:"
    assert old in text
    spec.write_text(text.replace(old, old.replace("lower: gt", "lower: gte")))
    with Simulator(seed=2, scale=0.05, now=SIM_NOW) as sim:
        config = write_config(tmp_path, {"profiles": "incremental"}, base_url=sim.url, database=tmp_path / "x.duckdb", spec=spec)
        (failed,) = sync(config, sim.api_key, now=SIM_NOW).failed
    assert isinstance(failed.error, ApiError) and failed.error.status == 400
    assert str(failed.error).startswith("Klaviyo 400 on GET /api/profiles?")
    assert "(stream profiles): Invalid filter provided" in str(failed.error)
