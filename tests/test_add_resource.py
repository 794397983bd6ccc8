"""Adding a resource is a YAML edit: a `tags` stream added to a copy of the spec syncs from its cassette."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cassette_scenarios import run_times, simulator
from tests.klx_testing import ROOT, rows, sync, write_config
from tests.record_cassettes import TAGS_SPEC_EXTRA


@pytest.mark.vcr("tags-full_refresh.yaml")
def test_tags_stream_added_in_yaml_only_syncs(tmp_path: Path) -> None:
    spec = tmp_path / "klaviyo.yaml"
    spec.write_text((ROOT / "specs" / "klaviyo.yaml").read_text() + TAGS_SPEC_EXTRA)
    database = tmp_path / "klx.duckdb"
    config = write_config(tmp_path, {"tags": "full_refresh"}, base_url=None, database=database, spec=spec)
    sim = simulator()
    summary = sync(config, sim.api_key, now=run_times(sim)[0])

    expected = {tag_id: row["attributes"]["name"] for tag_id, row in sim.store.table("tag").rows.items()}
    landed = rows(database, "select id, name from kl_rudder_tags")
    assert {r["id"]: r["name"] for r in landed} == expected
    assert [(s.stream, s.events, s.rows) for s in summary.streams] == [("tags", len(expected), len(expected))]
