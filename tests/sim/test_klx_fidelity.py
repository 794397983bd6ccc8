"""klx against the simulator where live Klaviyo is easy to get wrong (issue 8): exact rows after each change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from klaviyo_sim import Simulator
from tests.klx_testing import SIM_NOW, START_DATE, rows, sync, write_config


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(seed=5, scale=1.0, now=SIM_NOW) as simulator:
        yield simulator


def config_for(tmp_path: Path, sim: Simulator, resources: dict[str, str], start_date: str = START_DATE) -> tuple[Path, Path]:
    database = tmp_path / "klx.duckdb"
    path = write_config(tmp_path, resources, base_url=sim.url, database=database)
    path.write_text(path.read_text().replace(f"start_date: {START_DATE}", f"start_date: {start_date}"))
    return path, database


def table(database: Path, resource: str, columns: str = "*") -> list[dict]:
    return rows(database, f'select {columns} from "kl_rudder_{resource}"')


def state(database: Path, stream: str) -> dict:
    (row,) = rows(database, "select state from kl_klx_state where stream = ?", [stream])
    return json.loads(row["state"])


def test_a_lifted_suppression_leaves_global_exclusions_on_the_next_incremental_run(sim: Simulator, tmp_path: Path) -> None:
    config, database = config_for(tmp_path, sim, {"global_exclusions": "incremental", "profiles": "incremental"})
    sync(config, sim.api_key, now=SIM_NOW)
    before = {r["id"] for r in table(database, "global_exclusions", "id")}
    assert before == {t["id"] for t in sim.truth("global_exclusions", START_DATE)}
    all_lifted: list[str] = []
    for _ in range(3):  # three rounds of changes, as in the issue
        lifted = sim.mutate("profiles", lift=1, update=5)["lifted"]
        all_lifted += lifted
        sync(config, sim.api_key, now=sim.clock() + timedelta(minutes=5))
        landed = {r["id"] for r in table(database, "global_exclusions", "id")}
        assert landed == {t["id"] for t in sim.truth("global_exclusions", START_DATE)}
        assert lifted and not set(lifted) & landed
        before -= set(lifted)
    assert landed == before
    # profiles and global_exclusions now agree on every lifted profile.
    marketing = {r["id"]: json.loads(r["subscriptions_email_marketing"]) for r in table(database, "profiles", "id, subscriptions_email_marketing")}
    assert {i for i, m in marketing.items() if m["suppression"]} == landed
    assert len(all_lifted) == 3 and all(marketing[i]["consent"] == "SUBSCRIBED" for i in all_lifted)


def test_a_full_refresh_of_a_filtered_stream_needs_no_deletes(sim: Simulator, tmp_path: Path) -> None:
    config, database = config_for(tmp_path, sim, {"global_exclusions": "full_refresh"})
    sync(config, sim.api_key, now=SIM_NOW)
    lifted = sim.mutate("profiles", lift=3)["lifted"]
    sync(config, sim.api_key, now=sim.clock() + timedelta(minutes=5))
    landed = {r["id"] for r in table(database, "global_exclusions", "id")}
    assert landed == {t["id"] for t in sim.truth("global_exclusions", START_DATE)}
    assert len(lifted) == 3 and not set(lifted) & landed


def test_segments_profiles_holds_every_segment_whatever_the_start_date(sim: Simulator, tmp_path: Path) -> None:
    start = (SIM_NOW - timedelta(days=120)).date().isoformat()
    segments = sim.truth("segments")
    old = [s for s in segments if datetime.fromisoformat(s["cursor"]) < SIM_NOW - timedelta(days=120)]
    assert old and len(old) < len(segments), "some segments must predate the start date"
    config, database = config_for(tmp_path, sim, {"segments": "incremental", "segments_profiles": "full_refresh"}, start)
    sync(config, sim.api_key, now=SIM_NOW)
    landed = sorted((r["segment_id"], r["id"]) for r in table(database, "segments_profiles", "segment_id, id"))
    assert landed == sorted((t["segment_id"], t["id"]) for t in sim.truth("segments_profiles", start))
    assert {s["id"] for s in old} <= {segment for segment, _ in landed}
    # The segments table itself still starts at the start date.
    assert {r["id"] for r in table(database, "segments", "id")} == {t["id"] for t in sim.truth("segments", start)}
