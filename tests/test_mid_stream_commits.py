"""Mid-stream commits: with a small spec `batch_rows`, a run that fails keeps exactly its committed batches
and their cursor, and the next run resumes from there and completes exactly."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from engine.errors import ApiError
from engine.http import HttpClient
from klaviyo_sim import Simulator
from tests.expected_rows import assert_rows_match, expected_rows
from tests.klx_testing import ROOT, SIM_NOW, START_DATE, rows, sync, write_config

BATCH = 40  # profiles come 100 to a page: two batches are committed while the first page is read


@pytest.fixture
def sim():
    with Simulator(seed=3, scale=0.25, now=SIM_NOW) as simulator:
        yield simulator


def spec_with_batch(tmp_path: Path, batch_rows: int) -> Path:
    """A copy of the Klaviyo spec whose api.batch_rows is `batch_rows`."""
    text = (ROOT / "specs" / "klaviyo.yaml").read_text()
    assert "\napi:\n" in text
    path = tmp_path / "klaviyo.yaml"
    path.write_text(text.replace("\napi:\n", f"\napi:\n  batch_rows: {batch_rows}\n", 1))
    return path


def fail_on_request(monkeypatch: pytest.MonkeyPatch, number: int) -> list[str]:
    """Make the `number`th request of the run fail with a 500 that is not retried."""
    real_get, calls = HttpClient.get, []

    def get(self, url, params, **kw):
        calls.append(url)
        if len(calls) == number:
            raise ApiError("Klaviyo 500 on GET /api/profiles (stream profiles): boom", status=500, stream="profiles")
        return real_get(self, url, params, **kw)

    monkeypatch.setattr(HttpClient, "get", get)
    return calls


def profiles(database: Path) -> list[dict]:
    return rows(database, 'select * from "kl_rudder_profiles"')


def saved_cursor(database: Path) -> dict[str, str]:
    (row,) = rows(database, "select state from kl_klx_state where stream = 'profiles'")
    return json.loads(row["state"])["cursor"]


def in_cursor_order(truth: list[dict]) -> list[dict]:
    """Profiles in the order klx reads them: sort=updated, ties by id."""
    return sorted(truth, key=lambda t: (datetime.fromisoformat(t["cursor"]), t["id"]))


def test_a_failed_run_keeps_its_committed_batches_and_their_cursor_and_the_rerun_completes_exactly(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "klx.duckdb"
    config = write_config(tmp_path, {"profiles": "incremental"}, base_url=sim.url, database=database,
                          spec=spec_with_batch(tmp_path, BATCH))
    truth = in_cursor_order(sim.truth("profiles", START_DATE))
    content = expected_rows(sim, "profiles", START_DATE)

    calls = fail_on_request(monkeypatch, 2)  # the first page is read; fetching the second fails
    failed = sync(config, sim.api_key, now=SIM_NOW)
    assert len(calls) == 2 and failed.exit_code == 3 and [s.stream for s in failed.failed] == ["profiles"]

    # Exactly the two committed batches survive (the 20 rows read after them are rolled back),
    # and the saved cursor is the newest one they hold: rows and cursor were committed together.
    committed = truth[: 2 * BATCH]
    landed = profiles(database)
    assert_rows_match("profiles", landed, {(t["id"],): content[(t["id"],)] for t in committed}, lambda r: (r["id"],))
    assert {r["context_sources_job_run_id"] for r in landed} == {failed.job_run_id}
    cursor = datetime.fromisoformat(committed[-1]["cursor"])
    assert saved_cursor(database) == {"": cursor.isoformat()}

    # The rerun reads from the saved cursor (profiles: greater-than one second before it), not from start_date.
    monkeypatch.undo()
    rerun = sync(config, sim.api_key, now=SIM_NOW + timedelta(minutes=5))
    assert not rerun.failed
    (stream,) = rerun.streams
    assert stream.events == len([t for t in truth if datetime.fromisoformat(t["cursor"]) >= cursor])
    landed = profiles(database)
    assert_rows_match("profiles", landed, content, lambda r: (r["id"],))
    # Rows committed before the failure are re-read at the boundary but not rewritten; the rest are new.
    rewritten = {r["id"] for r in landed if r["context_sources_job_run_id"] == rerun.job_run_id}
    assert rewritten == {t["id"] for t in truth[2 * BATCH:]}
    assert saved_cursor(database) == {"": max(datetime.fromisoformat(t["cursor"]) for t in truth).isoformat()}


def test_a_failed_full_refresh_with_committed_batches_leaves_the_old_table_and_state(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "klx.duckdb"
    config = write_config(tmp_path, {"profiles": "full_refresh"}, base_url=sim.url, database=database,
                          spec=spec_with_batch(tmp_path, BATCH))
    sync(config, sim.api_key, now=SIM_NOW)
    before_rows, before_state = profiles(database), rows(database, "select stream, state from kl_klx_state")
    sim.mutate("profiles", update=120, create=10, delete=5)

    fail_on_request(monkeypatch, 3)  # two pages (five batches) are written to the shadow table first
    failed = sync(config, sim.api_key, now=SIM_NOW + timedelta(hours=1))
    assert [s.stream for s in failed.failed] == ["profiles"]
    assert profiles(database) == before_rows
    assert rows(database, "select stream, state from kl_klx_state") == before_state


def test_the_batch_size_changes_no_value_and_no_column_order(tmp_path: Path) -> None:
    """Events gain columns batch after batch (each metric has its own properties); the tables must not show it."""
    modes = {"events": "incremental", "campaigns": "incremental"}
    layouts = {}
    # Scale 0.01: 100 events, 15 batches of 7; the columns still arrive in later batches (checked below), and
    # every batch costs a commit, so more events would add time and no new case.
    with Simulator(seed=11, scale=0.01, now=SIM_NOW) as small:
        for batch_rows in (7, 5000):
            folder = tmp_path / str(batch_rows)
            folder.mkdir()
            database = folder / "klx.duckdb"
            config = write_config(folder, modes, base_url=small.url, database=database, spec=spec_with_batch(folder, batch_rows))
            summary = sync(config, small.api_key, now=SIM_NOW)
            assert not summary.failed
            added = {s.stream: s.columns_added for s in summary.streams}
            assert bool(added["events"]) is (batch_rows == 7), added  # small batches do add columns as they go
            for resource in modes:
                table = f"kl_rudder_{resource}"
                landed = rows(database, f'select * from "{table}"')
                assert_rows_match(table, landed, expected_rows(small, resource, START_DATE), lambda r: (r["id"],))
                layouts[batch_rows, resource] = rows(database, "select column_name, data_type from information_schema.columns "
                                                               "where table_name = ? order by ordinal_position", [table])
    for resource in modes:
        assert layouts[7, resource] == layouts[5000, resource], resource


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_an_unusable_batch_size_is_refused_naming_the_spec_line(tmp_path: Path, value: str) -> None:
    from engine.errors import SpecError
    from engine.spec import Spec

    path = tmp_path / "klaviyo.yaml"
    path.write_text((ROOT / "specs" / "klaviyo.yaml").read_text().replace("\napi:\n", f"\napi:\n  batch_rows: {value}\n", 1))
    line = path.read_text().splitlines().index(f"  batch_rows: {value}") + 1
    with pytest.raises(SpecError, match="batch_rows") as raised:
        Spec.from_yaml(path)
    assert f"klaviyo.yaml:{line}" in str(raised.value)
