"""resources.<name>.leave_out: an optional additional field goes unrequested, and its rate bucket uncounted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.config import Config
from engine.plan import left_out, load_spec
from engine.spec import Spec
from klaviyo_sim import Simulator
from tests.klx_testing import ROOT, SIM_NOW, START_DATE, rows, sync, write_config

KEY = "pk_sim_demo_key"
RESOURCES = {"segments": "full_refresh", "segments_profiles": "full_refresh", "profiles": "full_refresh"}


def leaving_out(config: Path, *names: str) -> Path:
    """`config` with predictive_analytics left out of each named resource."""
    text = config.read_text()
    for name in names:
        text = text.replace(f"  {name}: full_refresh\n", f"  {name}: {{sync_mode: full_refresh, leave_out: [predictive_analytics]}}\n")
    config.write_text(text)
    return config


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory):
    """One sync that asks for predictive analytics and one that leaves them out, each against its own simulator."""
    runs = {}
    for variant in ("asked", "left_out"):
        tmp = tmp_path_factory.mktemp(variant)
        with Simulator(seed=3, scale=0.2, now=SIM_NOW) as sim:
            config = write_config(tmp, RESOURCES, base_url=sim.url, database=tmp / "out.duckdb")
            if variant == "left_out":
                leaving_out(config, "profiles", "segments_profiles")
            summary = sync(config, KEY)
            truth = {name: len(sim.truth(name, START_DATE)) for name in RESOURCES}
            runs[variant] = (summary, list(sim.request_log), dict(sim.limiter.counted), truth, tmp / "out.duckdb")
    return runs


def _fields(log: list, path_start: str) -> set[str]:
    return {params.get("additional-fields[profile]", "") for _, path, params in log if path.startswith(path_start)}


def test_left_out_field_is_not_requested_and_its_bucket_not_counted(synced) -> None:
    summary, log, counted, truth, _ = synced["left_out"]
    assert not summary.failed
    assert _fields(log, "/api/profiles") == {"subscriptions"}
    assert _fields(log, "/api/segments/") == {"subscriptions"}
    assert "predictive_analytics" not in counted
    assert counted["/api/profiles"] > 0
    # The same sync asking for them: every profile read counted against the predictive-analytics bucket.
    _, asked_log, asked_counted, _, _ = synced["asked"]
    assert _fields(asked_log, "/api/profiles") == {"subscriptions,predictive_analytics"}
    profile_reads = sum(1 for _, path, _ in asked_log if path == "/api/profiles" or path.endswith("/profiles"))
    assert asked_counted["predictive_analytics"] == profile_reads


def test_rows_are_the_same_without_the_predictive_columns(synced) -> None:
    _, _, _, truth, database = synced["left_out"]
    _, _, _, _, asked_database = synced["asked"]
    for table, key in (("kl_rudder_profiles", "id"), ("kl_rudder_segments_profiles", "segment_id, id")):
        columns = [r["column_name"] for r in rows(database, f"SELECT column_name FROM (DESCRIBE {table})")]
        asked = [r["column_name"] for r in rows(asked_database, f"SELECT column_name FROM (DESCRIBE {table})")]
        assert not [c for c in columns if c.startswith("predictive_analytics")]
        predictive = [c for c in asked if c.startswith("predictive_analytics")]
        assert predictive, "the default sync asks for predictive analytics"
        assert columns == [c for c in asked if c not in predictive]
        kept = ", ".join(f'"{c}"' for c in columns if c not in ("received_at", "uuid_ts", "context_sources_job_run_id",
                                                                     "context_sources_task_run_id"))
        left = rows(database, f"SELECT {kept} FROM {table} ORDER BY {key}")
        assert left == rows(asked_database, f"SELECT {kept} FROM {table} ORDER BY {key}")
    assert len(rows(database, "SELECT id FROM kl_rudder_profiles")) == truth["profiles"]


def test_load_spec_removes_only_the_left_out_item(tmp_path: Path) -> None:
    config = leaving_out(write_config(tmp_path, RESOURCES, base_url="http://127.0.0.1:9", database=tmp_path / "x.duckdb"), "profiles")
    spec = load_spec(Config.from_yaml(config, env={"KLAVIYO_API_KEY": KEY}))
    assert spec.streams["profiles"].params == {"additional-fields[profile]": "subscriptions"}
    assert spec.streams["segments_profiles"].params["additional-fields[profile]"] == "subscriptions,predictive_analytics"
    assert spec.streams["profiles"].optional == {"predictive_analytics": "additional-fields[profile]"}


def test_leaving_out_the_only_item_drops_the_parameter() -> None:
    profiles = Spec.from_yaml(ROOT / "specs" / "klaviyo.yaml").streams["profiles"]
    only = dataclasses.replace(profiles, params={"additional-fields[profile]": "predictive_analytics", "page[size]": "100"})
    assert left_out(only, ("predictive_analytics",)).params == {"page[size]": "100"}


@pytest.mark.parametrize("doc", ["README.md", "config.example.yaml", "docs/migrating-from-rudderstack.md"])
def test_the_docs_say_a_table_created_without_predictive_analytics_has_no_such_columns(doc: str) -> None:
    # They said the columns "stay empty": a dbt model selecting them then failed on a table that has none
    # (test_rows_are_the_same_without_the_predictive_columns).
    text = " ".join((ROOT / doc).read_text().replace("#", " ").split())
    assert "a table klx creates that way has none" in text
