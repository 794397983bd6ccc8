"""End to end against the local simulator: tables equal its ground truth, incremental runs take exactly the changes."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from engine.errors import ApiError
from engine.http import HttpClient
from engine.run import RunSummary
from klaviyo_sim import Simulator
from tests.expected_rows import assert_load_columns, assert_rows_match, expected_rows
from tests.klx_testing import ALL_RESOURCES, SIM_NOW, START_DATE, default_modes, key_of, rows, sync, write_config

CURSOR = {"campaigns": "updated_at", "events": "datetime"}
MUTABLE = ("campaigns", "email_templates", "flows", "lists", "segments", "profiles")


@pytest.fixture
def sim():
    with Simulator(seed=3, scale=0.25, now=SIM_NOW) as simulator:
        yield simulator


def setup(sim: Simulator, tmp_path: Path, resources: dict[str, str] | None = None) -> tuple[Path, Path]:
    database = tmp_path / "klx.duckdb"
    return write_config(tmp_path, resources or default_modes(), base_url=sim.url, database=database), database


@pytest.fixture(scope="module")
def first_sync(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunSummary]:
    """A first sync of all ten resources from a simulator like `sim` (same seed, scale and now), made once.

    Tests read it, or continue from a copy (`continue_first_sync`): the simulator is deterministic, so a
    fresh `sim` serves exactly what this one did until the test changes it.
    """
    folder = tmp_path_factory.mktemp("first-sync")
    with Simulator(seed=3, scale=0.25, now=SIM_NOW) as simulator:
        config, database = setup(simulator, folder)
        summary = sync(config, simulator.api_key, now=SIM_NOW)
    return database, summary


def continue_first_sync(first_sync: tuple[Path, RunSummary], sim: Simulator, tmp_path: Path,
                        resources: dict[str, str] | None = None) -> tuple[Path, Path, RunSummary]:
    """A config on `sim` whose database is a copy of the shared first sync's, as if that sync had run here."""
    database, summary = first_sync
    config, copy = setup(sim, tmp_path, resources)
    shutil.copyfile(database, copy)
    return config, copy, summary


def table(database: Path, resource: str, columns: str = "*") -> list[dict]:
    return rows(database, f'select {columns} from "kl_rudder_{resource}"')


def state(database: Path, stream: str) -> dict:
    (row,) = rows(database, "select state from kl_klx_state where stream = ?", [stream])
    return json.loads(row["state"])


def test_all_ten_resources_land_exactly_the_simulators_truth(sim: Simulator, first_sync: tuple[Path, RunSummary]) -> None:
    database, summary = first_sync
    expected = {resource: expected_rows(sim, resource, START_DATE) for resource in ALL_RESOURCES}
    assert [s.stream for s in summary.streams][-1] == "segments_profiles"  # the child runs after its parent
    for resource in ALL_RESOURCES:
        truth = sim.truth(resource, START_DATE)
        landed = table(database, resource)
        assert sorted(key_of(resource, r) for r in landed) == sorted(key_of(resource, t) for t in truth), resource
        assert len(truth) > 0, resource
        cursor = CURSOR.get(resource, "updated")
        if resource not in ("metrics", "segments_profiles"):
            cursors = {key_of(resource, t): datetime.fromisoformat(t["cursor"]) for t in truth}
            assert {key_of(resource, r): r[cursor] for r in landed} == cursors, resource
        # Every column of every row: flattened attributes, JSON, relationships, partition, parent, included.
        assert_rows_match(resource, landed, expected[resource], lambda r: key_of(resource, r))
        assert_load_columns(resource, landed, {summary.job_run_id})


def test_summary_counts_every_record_the_api_returned_as_an_event(sim: Simulator, tmp_path: Path) -> None:
    config, database = setup(sim, tmp_path, {"global_exclusions": "incremental", "profiles": "incremental"})
    summary = sync(config, sim.api_key, now=SIM_NOW)
    by_stream = {s.stream: s for s in summary.streams}
    profiles = len(sim.truth("profiles", START_DATE))
    assert by_stream["profiles"].events == by_stream["profiles"].rows == profiles
    suppressed = len(sim.truth("global_exclusions", START_DATE))
    # Global exclusions read suppressed profiles only (server-side filter), and on a first run no changed ones.
    assert by_stream["global_exclusions"].events == by_stream["global_exclusions"].rows == suppressed
    assert summary.events == profiles + suppressed
    assert by_stream["profiles"].pages == -(-profiles // 100)


def test_incremental_run_takes_exactly_the_changes(sim: Simulator, first_sync: tuple[Path, RunSummary], tmp_path: Path) -> None:
    config, database, first = continue_first_sync(first_sync, sim, tmp_path)
    before = {r: {key_of(r, x) for x in table(database, r, "id")} for r in MUTABLE}
    contents = {r: expected_rows(sim, r, START_DATE) for r in ALL_RESOURCES}
    changed = {r: sim.mutate(r, update=3, create=2, delete=1) for r in MUTABLE}
    changed["events"] = sim.mutate("events", create=4)
    second = sync(config, sim.api_key, now=sim.clock() + timedelta(minutes=5))
    for resource, mode in default_modes().items():
        # Updated rows hold their new values in every column; rows deleted at the source keep their last ones.
        latest = expected_rows(sim, resource, START_DATE)
        landed = table(database, resource)
        # A row the second run did not rewrite keeps what it landed with: an old event whose profile was
        # deleted since keeps its profile_email (which rows were rewritten is checked exactly below).
        rewritten = {key_of(resource, r) for r in landed if r["context_sources_job_run_id"] == second.job_run_id}
        kept = {k: v for k, v in latest.items() if k in rewritten or k not in contents[resource]}
        expected = latest if mode == "full_refresh" else {**contents[resource], **kept}
        assert_rows_match(resource, landed, expected, lambda r: key_of(resource, r))
        assert_load_columns(resource, landed, {first.job_run_id, second.job_run_id})
    for resource, change in changed.items():
        touched = table(database, resource, "id, context_sources_job_run_id")
        rewritten = {r["id"] for r in touched if r["context_sources_job_run_id"] == second.job_run_id}
        assert rewritten == set(change.get("updated", [])) | set(change["created"]), resource
    for resource in MUTABLE:
        ids = {key_of(resource, x) for x in table(database, resource, "id")}
        # Incremental runs cannot see deletions: deleted rows stay, created ones are added.
        assert ids == before[resource] | {(i,) for i in changed[resource]["created"]}, resource


def test_unchanged_source_second_run_rewrites_no_row(sim: Simulator, first_sync: tuple[Path, RunSummary], tmp_path: Path) -> None:
    config, database, _ = continue_first_sync(first_sync, sim, tmp_path, {r: "incremental" for r in ("events", "profiles", "campaigns", "lists")})
    counts = {r: len(table(database, r, "id")) for r in ("events", "profiles", "campaigns", "lists")}
    second = sync(config, sim.api_key, now=SIM_NOW + timedelta(hours=1))
    for resource, count in counts.items():
        landed = table(database, resource, "id, context_sources_job_run_id")
        assert len(landed) == count, resource
        assert not [r for r in landed if r["context_sources_job_run_id"] == second.job_run_id], resource
    # Yet the boundary was re-read: inclusive bounds fetch at least the newest record again.
    assert all(s.events > 0 for s in second.streams if s.stream != "events")


def test_full_refresh_drops_rows_deleted_at_the_source(sim: Simulator, tmp_path: Path) -> None:
    config, database = setup(sim, tmp_path, {"profiles": "full_refresh", "segments_profiles": "full_refresh"})
    sync(config, sim.api_key, now=SIM_NOW)
    deleted = sim.mutate("profiles", delete=5)["deleted"]
    sync(config, sim.api_key, now=SIM_NOW)
    ids = {r["id"] for r in table(database, "profiles", "id")}
    assert ids == {t["id"] for t in sim.truth("profiles", START_DATE)}
    assert not ids & set(deleted)
    members = {(r["segment_id"], r["id"]) for r in table(database, "segments_profiles", "segment_id, id")}
    assert members == {(t["segment_id"], t["id"]) for t in sim.truth("segments_profiles", START_DATE)}


def test_future_dated_events_land_but_the_cursor_stops_at_the_run_start(sim: Simulator, first_sync: tuple[Path, RunSummary]) -> None:
    database, _ = first_sync  # run at SIM_NOW
    future = [t for t in sim.truth("events", START_DATE) if datetime.fromisoformat(t["cursor"]) > SIM_NOW]
    assert future, "the simulator should hold future-dated events"
    landed = {r["id"] for r in table(database, "events", "id")}
    assert {t["id"] for t in future} <= landed
    assert state(database, "events")["cursor"] == {"": SIM_NOW.isoformat()}


def test_per_partition_cursors_are_saved(sim: Simulator, first_sync: tuple[Path, RunSummary]) -> None:
    database, _ = first_sync  # campaigns and flows incremental
    truth = {t["id"]: t["cursor"] for t in sim.truth("campaigns", START_DATE)}
    landed = table(database, "campaigns", "id, channel, archived")
    saved = state(database, "campaigns")["cursor"]
    for row in landed:
        key = f"channel={row['channel']},archived={'true' if row['archived'] else 'false'}"
        assert datetime.fromisoformat(saved[key]) >= datetime.fromisoformat(truth[row["id"]])
    assert set(state(database, "flows")["cursor"]) <= {"archived=false", "archived=true"}


def test_records_sharing_one_cursor_second_across_pages_all_land(sim: Simulator, tmp_path: Path) -> None:
    truth = sim.truth("profiles", START_DATE)
    seconds = {}
    for t in truth:
        seconds[t["cursor"]] = seconds.get(t["cursor"], 0) + 1
    assert max(seconds.values()) > 100, "the simulator should hold a tie cluster larger than a page"
    config, database = setup(sim, tmp_path, {"profiles": "incremental"})
    sync(config, sim.api_key, now=SIM_NOW)
    assert len(table(database, "profiles", "id")) == len(truth)


def test_a_failed_stream_keeps_its_table_and_cursor(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, database = setup(sim, tmp_path, {"profiles": "incremental"})
    sync(config, sim.api_key, now=SIM_NOW)
    table_before, state_before = table(database, "profiles"), state(database, "profiles")
    sim.mutate("profiles", update=150, create=20)
    real_get, calls = HttpClient.get, []

    def failing_get(self, url, params, **kw):
        calls.append(url)
        if len(calls) == 2:
            raise ApiError("Klaviyo 500 on GET /api/profiles (stream profiles): boom", status=500, stream="profiles")
        return real_get(self, url, params, **kw)

    monkeypatch.setattr(HttpClient, "get", failing_get)
    (failed,) = sync(config, sim.api_key, now=SIM_NOW + timedelta(hours=1)).failed
    assert failed.stream == "profiles" and failed.error.status == 500
    assert table(database, "profiles") == table_before
    assert state(database, "profiles") == state_before


def test_transient_faults_are_retried_without_losing_a_record(sim: Simulator, tmp_path: Path) -> None:
    sim.faults.queue(["503", "reset", "truncated", "500", "502"])
    config, database = setup(sim, tmp_path, {"profiles": "incremental", "metrics": "full_refresh"})
    waits: list[float] = []
    sync(config, sim.api_key, now=SIM_NOW, sleep=waits.append)
    assert len(waits) == 5
    assert {r["id"] for r in table(database, "profiles", "id")} == {t["id"] for t in sim.truth("profiles", START_DATE)}


def test_429_waits_for_retry_after(sim: Simulator, tmp_path: Path) -> None:
    config, database = setup(sim, tmp_path, {"metrics": "full_refresh"})
    sim.rate_limits = True
    # The simulator's rate windows run on a clock that moves only when klx sleeps: the spent burst window
    # cannot expire while klx starts (it did on a loaded machine), and the wait costs no real time.
    slept = [0.0]
    sim.limiter.clock = lambda: 1_000.0 + slept[0]
    for _ in range(12):  # metrics is tier M: 10 a second, so the burst window is spent
        sim.handle_api("GET", "/api/metrics", "", {"authorization": f"Klaviyo-API-Key {sim.api_key}", "revision": "2026-07-15"}, sim.url)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        slept[0] += seconds

    sync(config, sim.api_key, now=SIM_NOW, sleep=sleep)
    assert waits and 1.0 <= waits[0] <= 61.0
    assert len(table(database, "metrics", "id")) == len(sim.truth("metrics", START_DATE))


def test_two_prefixes_share_one_database(sim: Simulator, tmp_path: Path) -> None:
    database = tmp_path / "shared.duckdb"
    a = write_config(tmp_path, {"lists": "incremental"}, base_url=sim.url, database=database, prefix="a_")
    b = write_config(tmp_path, {"lists": "full_refresh"}, base_url=sim.url, database=database, prefix="b_")
    sync(a, sim.api_key, now=SIM_NOW)
    sync(b, sim.api_key, now=SIM_NOW)
    tables = {r["table_name"] for r in rows(database, "select table_name from information_schema.tables")}
    assert {"a_rudder_lists", "b_rudder_lists", "a_klx_state", "b_klx_state"} <= tables


def test_the_guides_full_refresh_drops_rudderstack_rows_an_incremental_run_keeps(sim: Simulator, tmp_path: Path, monkeypatch) -> None:
    # RudderStack kept a profile's row after its suppression was lifted; klx's incremental runs see a lift
    # only when it happens after their first run, so such rows stay until the full refresh the migration
    # guide (rudder_global_exclusions) prescribes.
    import duckdb

    from engine.cli import main

    config, database = setup(sim, tmp_path, {"global_exclusions": "incremental"})
    suppressed = {t["id"] for t in sim.truth("global_exclusions", START_DATE)}
    lifted = next(t["id"] for t in sim.truth("profiles", START_DATE) if t["id"] not in suppressed)
    with duckdb.connect(str(database)) as con:
        con.execute("create table kl_rudder_global_exclusions (id varchar, updated timestamp, attributes_email varchar, "
                    "received_at timestamp, uuid_ts timestamp, context_sources_job_run_id varchar, context_sources_task_run_id varchar)")
        con.execute("insert into kl_rudder_global_exclusions (id, updated, attributes_email) values "
                    "(?, '2024-02-01 00:00:00', 'lifted@x.com'), ('deleted-profile', '2024-01-02 00:00:00', 'gone@x.com')", [lifted])
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    for _ in range(2):
        assert main(["run", str(config)]) == 0
    assert {r["id"] for r in table(database, "global_exclusions", "id")} == suppressed | {lifted, "deleted-profile"}
    guide = (Path(__file__).resolve().parent.parent / "docs" / "migrating-from-rudderstack.md").read_text()
    (command,) = re.findall(r"^klx run config\.yaml (--streams global_exclusions .*)$", guide, re.M)
    assert main(["run", str(config), *command.split()]) == 0
    landed = table(database, "global_exclusions", "id, attributes_email")
    assert {r["id"] for r in landed} == suppressed and {r["attributes_email"] for r in landed} == {None}


def test_a_table_dropped_since_its_state_was_saved_is_read_again_from_the_start(
    sim: Simulator, first_sync: tuple[Path, RunSummary], tmp_path: Path
) -> None:
    # Read from its saved cursors, a dropped table came back holding only what changed since (2 of 12 lists).
    resources = {"lists": "incremental", "events": "incremental", "campaigns": "incremental"}
    config, database, _ = continue_first_sync(first_sync, sim, tmp_path, resources)
    with duckdb.connect(str(database)) as con:
        con.execute("drop table kl_rudder_lists")
        con.execute("drop table kl_rudder_events")
    second = sync(config, sim.api_key, now=sim.clock() + timedelta(minutes=5))
    assert not second.failed
    for resource in ("lists", "events"):
        assert_rows_match(resource, table(database, resource), expected_rows(sim, resource, START_DATE), lambda r: key_of(resource, r))
        (summary,) = [s for s in second.streams if s.stream == resource]
        assert summary.warnings[0] == (
            f"table kl_rudder_{resource} is missing though the state has cursors for it: read again from the start, as a first sync"
        )
        assert state(database, resource)["cursor"]  # saved anew
    (campaigns,) = [s for s in second.streams if s.stream == "campaigns"]
    assert not campaigns.warnings and campaigns.events < len(sim.truth("campaigns", START_DATE))  # its table is there: from its cursors


def test_a_start_date_moved_earlier_reads_the_gap_below_the_saved_cursors(sim: Simulator, tmp_path: Path) -> None:
    # A user who began with a recent start_date and later wants more history sets an earlier one: read from
    # the saved cursors alone, the runs after it never read what lies between the two dates.
    later = "2026-06-01"
    modes = {r: "incremental" for r in ("campaigns", "email_templates", "events", "flows", "global_exclusions", "lists", "segments", "profiles")}
    config, database = setup(sim, tmp_path, modes)
    config.write_text(config.read_text().replace(f"start_date: {START_DATE}", f"start_date: {later}"))
    sync(config, sim.api_key, now=SIM_NOW)
    for resource in modes:
        assert len(table(database, resource, "id")) == len(sim.truth(resource, later)), resource
    config.write_text(config.read_text().replace(f"start_date: {later}", f"start_date: {START_DATE}"))
    sim.request_log.clear()
    second = sync(config, sim.api_key, now=SIM_NOW + timedelta(hours=6))
    assert not second.failed
    for resource in modes:
        assert_rows_match(resource, table(database, resource), expected_rows(sim, resource, START_DATE), lambda r: key_of(resource, r))
        assert state(database, resource)["start"] == datetime.fromisoformat(START_DATE + "T00:00:00+00:00").isoformat()
    # Events are read in windows: the gap's, and the saved cursor's lookback on; not the months between.
    starts = sorted(re.search(r"greater-or-equal\(datetime,([^)]+)\)", q["filter"]).group(1)
                    for _, path, q in sim.request_log if path.startswith("/api/events") and "page[cursor]" not in q)
    assert starts[0] == "2024-01-01T00:00:00+00:00" and max(s for s in starts if s < later) < later
    assert starts[-1] == (SIM_NOW - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    assert not [s for s in starts if later <= s < starts[-1]]
