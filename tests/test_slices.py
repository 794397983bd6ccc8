"""Time slices (spec `cursor.slice`): a cursor range read as windows side by side, each with its own filter,
pagination and checkpoint; the rows are exact, the windows tile the range, and a run stopped midway resumes
without skipping or re-reading a finished window."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.errors import ApiError
from engine.http import HttpClient
from engine.slices import Coverage, windows
from klaviyo_sim import Simulator
from tests.expected_rows import assert_rows_match, expected_rows
from tests.klx_testing import ROOT, SIM_NOW, START_DATE, rows, sync, write_config

UTC = timezone.utc
STEP = timedelta(days=30)
WINDOW = re.compile(r"^(?:and\()?greater-or-equal\(datetime,([^)]+)\)(?:,less-than\(datetime,([^)]+)\)\))?$")


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def sim():
    with Simulator(seed=3, scale=0.25, now=SIM_NOW) as simulator:
        yield simulator


def sliced_spec(tmp_path: Path, *, step: str = "30d", page_size: int = 50, batch_rows: int = 5000) -> Path:
    """The Klaviyo spec with events sliced by `step`, `page_size` events a page and `batch_rows` a transaction."""
    text = (ROOT / "specs" / "klaviyo.yaml").read_text()
    for old, new in (("      slice: 30d\n", f"      slice: {step}\n"), ("\napi:\n", f"\napi:\n  batch_rows: {batch_rows}\n")):
        assert old in text
        text = text.replace(old, new, 1)
    text = re.sub(r"(  events:\n(?:    .*\n)*?    page_size: )1000", rf"\g<1>{page_size}", text)
    assert f"page_size: {page_size}\n    # page[size] on /api/events" in text
    path = tmp_path / "klaviyo.yaml"
    path.write_text(text)
    return path


def record_requests(monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> list[dict[str, str]]:
    """Every request's query parameters; with `fail_at`, that request fails with a 500 that is not retried."""
    real_get, calls = HttpClient.get, []

    def get(self, url, params, **kw):
        calls.append(dict(params))
        if len(calls) == fail_at:
            raise ApiError("Klaviyo 500 on GET /api/events (stream events): boom", status=500, stream="events")
        return real_get(self, url, params, **kw)

    monkeypatch.setattr(HttpClient, "get", get)
    return calls


def window_filters(calls: list[dict[str, str]]) -> list[tuple[datetime, datetime | None]]:
    """The windows the requests asked for (a window's later pages follow links carrying its filter), oldest first."""
    out = []
    for params in calls:
        if "filter" in params:
            match = WINDOW.match(params["filter"])
            assert match, params["filter"]
            out.append((datetime.fromisoformat(match[1]), datetime.fromisoformat(match[2]) if match[2] else None))
    return sorted(set(out), key=lambda w: w[0])


def events(database: Path) -> list[dict]:
    return rows(database, 'select * from "kl_rudder_events"')


def saved_state(database: Path) -> dict:
    (row,) = rows(database, "select state from kl_klx_state where stream = 'events'")
    return json.loads(row["state"])


def test_windows_tile_the_range_and_the_last_one_stays_open() -> None:
    start, until = day("2024-01-01"), day("2024-03-15")
    got = windows(start, until, STEP)
    assert got == [(start, day("2024-01-31")), (day("2024-01-31"), day("2024-03-01")), (day("2024-03-01"), None)]
    # A range ending at `end` (a backfill) ends with a bounded window.
    assert windows(start, until, STEP, end=day("2024-02-10")) == [(start, day("2024-01-31")), (day("2024-01-31"), day("2024-02-10"))]


def test_covered_ranges_are_left_out_but_their_last_lookback_is_read_again() -> None:
    start, until = day("2024-01-01"), day("2024-12-01")
    covered = [(day("2024-02-01"), day("2024-05-01")), (day("2024-06-01"), day("2024-06-02"))]
    got = windows(start, until, STEP, covered=covered, lookback=timedelta(days=3))
    assert got[:2] == [(start, day("2024-01-31")), (day("2024-01-31"), day("2024-02-01"))]
    # [Feb 1, Apr 28) is skipped; the one-day range is shorter than the lookback, so it is read again.
    assert got[2] == (day("2024-04-28"), day("2024-05-28"))
    assert all(not (a < day("2024-04-28") and (b is None or b > day("2024-02-01"))) for a, b in got[2:])
    assert got[-1][1] is None and got[-1][0] < until


def test_the_cursor_moves_only_past_windows_finished_without_a_gap_below() -> None:
    started = day("2024-06-01")
    first, second, third = (day("2024-01-01"), day("2024-02-01")), (day("2024-02-01"), day("2024-03-01")), (day("2024-03-01"), None)
    coverage = Coverage(saved=None, base=first[0], started=started)
    coverage.finished("b", second, None)
    coverage.progress("c", third, day("2024-03-10"))
    assert coverage.state() == (None, [(second[0], day("2024-03-10"))])  # touching ranges merge
    coverage.progress("a", first, day("2024-01-20"))
    assert coverage.state() == (day("2024-01-20"), [(second[0], day("2024-03-10"))])
    coverage.finished("a", first, day("2024-01-31"))
    assert coverage.state() == (day("2024-03-10"), [])
    coverage.finished("c", third, None)  # nothing after: read up to the run's start
    assert coverage.state() == (started, [])


def test_a_sliced_events_sync_lands_exactly_the_simulators_rows_reading_each_window_once(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "klx.duckdb"
    config = write_config(tmp_path, {"events": "incremental"}, base_url=sim.url, database=database, spec=sliced_spec(tmp_path))
    calls = record_requests(monkeypatch)
    summary = sync(config, sim.api_key, now=SIM_NOW)
    assert not summary.failed
    truth = sim.truth("events", START_DATE)
    assert summary.streams[0].events == len(truth)  # no event read twice, none missed
    assert_rows_match("events", events(database), expected_rows(sim, "events", START_DATE), lambda r: (r["id"],))

    got = window_filters(calls)
    assert got[0][0] == day(START_DATE) and got[-1][1] is None  # from start_date, the last window open
    assert all(a[1] == b[0] for a, b in zip(got, got[1:]))  # no gap, no overlap
    assert all(b - a == STEP for a, b in got[:-1]) and got[-1][0] < SIM_NOW <= got[-1][0] + STEP
    # Future-dated events (after the run's start) are read by the open window, as an unsliced read does.
    assert any(datetime.fromisoformat(t["cursor"]) > SIM_NOW for t in truth)
    assert saved_state(database)["cursor"] == {"": min(SIM_NOW, max(datetime.fromisoformat(t["cursor"]) for t in truth)).isoformat()}
    assert "covered" not in saved_state(database)


def test_an_event_exactly_at_a_window_edge_is_read_once(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    truth = sim.truth("events", START_DATE)
    edge = sorted(datetime.fromisoformat(t["cursor"]) for t in truth)[len(truth) // 2]
    start = (edge - 3 * STEP).isoformat()  # windows begin at start + k * 30 days: one of them at `edge`
    config = write_config(tmp_path, {"events": "incremental"}, base_url=sim.url, database=tmp_path / "klx.duckdb",
                          spec=sliced_spec(tmp_path))
    config.write_text(config.read_text().replace(f"start_date: {START_DATE}", f"start_date: '{start}'"))
    calls = record_requests(monkeypatch)
    summary = sync(config, sim.api_key, now=SIM_NOW)
    got = window_filters(calls)
    assert (edge - STEP, edge) in got and any(w[0] == edge for w in got)
    at_edge = [t["id"] for t in sim.truth("events", start) if datetime.fromisoformat(t["cursor"]) == edge]
    assert at_edge and summary.streams[0].events == len(sim.truth("events", start))
    landed = {r["id"] for r in events(tmp_path / "klx.duckdb")}
    assert set(at_edge) <= landed
    assert_rows_match("events", events(tmp_path / "klx.duckdb"), expected_rows(sim, "events", start), lambda r: (r["id"],))


def test_a_run_failed_after_some_windows_committed_resumes_without_a_gap_and_ends_exact(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "klx.duckdb"
    spec = sliced_spec(tmp_path, batch_rows=40)
    config = write_config(tmp_path, {"events": "incremental"}, base_url=sim.url, database=database, spec=spec)
    record_requests(monkeypatch, fail_at=50)
    failed = sync(config, sim.api_key, now=SIM_NOW)
    assert [s.stream for s in failed.failed] == ["events"]

    # What the state says is read is in the table: everything before the cursor and in each covered range.
    state = saved_state(database)
    cursor = datetime.fromisoformat(state["cursor"][""]) if state["cursor"] else day(START_DATE)
    covered = [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in state["covered"][""]]
    assert covered, "the windows finished out of order: ranges beyond the cursor are saved"
    landed = {r["id"] for r in events(database)}
    truth = sim.truth("events", START_DATE)
    claimed = [t["id"] for t in truth if (t_ := datetime.fromisoformat(t["cursor"])) < cursor or any(a <= t_ < b for a, b in covered)]
    assert set(claimed) <= landed and len(landed) < len(truth)

    monkeypatch.undo()
    calls = record_requests(monkeypatch)
    rerun = sync(config, sim.api_key, now=SIM_NOW + timedelta(minutes=5))
    assert not rerun.failed
    assert_rows_match("events", events(database), expected_rows(sim, "events", START_DATE), lambda r: (r["id"],))
    # The rerun read from the cursor's lookback and around the covered ranges (each re-read over its last 3 days only).
    lookback = timedelta(days=3)
    for a, b in window_filters(calls):
        assert a >= cursor - lookback
        assert not any(a < stop - lookback and (b is None or b > start) for start, stop in covered), (a, b)
    assert rerun.streams[0].events < len(truth)
    assert "covered" not in saved_state(database)


def test_an_incremental_run_after_new_events_is_exact(sim: Simulator, tmp_path: Path) -> None:
    database = tmp_path / "klx.duckdb"
    config = write_config(tmp_path, {"events": "incremental"}, base_url=sim.url, database=database, spec=sliced_spec(tmp_path))
    assert not sync(config, sim.api_key, now=SIM_NOW).failed
    created = sim.mutate("events", create=25)["created"]
    again = sync(config, sim.api_key, now=SIM_NOW + timedelta(days=1))
    assert not again.failed
    landed = events(database)
    assert set(created) <= {r["id"] for r in landed}
    assert_rows_match("events", landed, expected_rows(sim, "events", START_DATE), lambda r: (r["id"],))
    # Only the lookback and what came after were read: one window, not the whole range again.
    assert again.streams[0].pages < 10
