"""Time slices in engine/run.py, exactly and fast: what each commit saves (rows, cursor, covered ranges) while
windows are read side by side, and what a rerun after a failure reads and saves.

A scripted API serves one day's window per request (its filter says which), two records a page, so the
order in which run.py takes the pages is known (engine/concurrency.py's fixed rotation) and every
checkpoint can be written out by hand. tests/test_slices.py checks the same against the simulator.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

import engine.run
from engine.config import Config
from tests.klx_testing import START_DATE, rows, write_config
from tests.scripted_api import API_KEY, ScriptedApi, item, page

UTC = timezone.utc
NOW = datetime(2025, 1, 4, 12, tzinfo=UTC)  # windows of 1d from Jan 1: [1, 2), [2, 3), [3, 4), [4, open)
WINDOW = re.compile(r"^(?:and\()?greater-or-equal\(updated,([^)]+)\)(?:,less-than\(updated,([^)]+)\)\))?$")

SPEC = """\
api:
  name: Acme
  base_url: https://api.acme.invalid
  auth: {header: Authorization, value: "Bearer {api_key}"}
  records: data
  record_format: jsonapi
  error_detail: "errors[0].detail"
  table: "acme_{stream}"
  pagination: {type: next_link, next: links.next}
  sort: {param: sort}
  filter:
    param: filter
    predicate: "{op}({field},{value})"
    combine: "and({predicates})"
    separator: ","
    operators: {eq: equals, gt: greater-than, gte: greater-or-equal, lt: less-than}
    datetime_format: "%Y-%m-%dT%H:%M:%S+00:00"
  retry: {max_attempts: 1, max_wait_seconds: 0}
  batch_rows: 2
streams:
  ticks:
    path: /ticks
    primary_key: [id]
    cursor: {field: updated, slice: 1d}
    sync_modes: [full_refresh, incremental]
  late:
    path: /late
    primary_key: [id]
    cursor: {field: updated, slice: 1d, lookback: 1d}
    sync_modes: [incremental]
  loose:
    path: /loose
    primary_key: [id]
    cursor: {field: updated, slice: 1d, sort: false}
    sync_modes: [incremental]
"""


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2025, 1, day, hour, tzinfo=UTC)


def iso(day: int, hour: int = 0) -> str:
    return at(day, hour).isoformat()


class Windows(dict):
    """Routes for ScriptedApi: a path's records within the request's [gte, lt) filter, `per_page` a page.

    `fail` holds (path, window start, offset) answered with a 500; with `trailing_empty`, a window whose
    records fill its last page exactly gets one more, empty page (as an API that only learns it is done then).
    """

    def __init__(self, records: dict[str, list[dict[str, Any]]], *, per_page: int = 2,
                 fail: tuple[tuple[str, datetime, int], ...] = (), trailing_empty: bool = False) -> None:
        super().__init__()
        self.records, self.per_page, self.fail, self.trailing_empty = records, per_page, fail, trailing_empty
        self.windows: list[tuple[str, datetime, datetime | None]] = []  # each window's first request

    def get(self, target: str, default: Any = None) -> Any:
        parts = urlsplit(target)
        if parts.path not in self.records or not parts.query:
            return default  # ScriptedApi also looks up the bare path
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        match = WINDOW.match(query["filter"])
        assert match, query["filter"]
        low, high = (datetime.fromisoformat(v) if v else None for v in match.groups())
        offset = int(query.pop("offset", "0"))
        if offset == 0:
            self.windows.append((parts.path, low, high))
        if (parts.path, low, offset) in self.fail:
            return 500, {"errors": [{"detail": "Boom."}]}

        def updated(record: dict[str, Any]) -> datetime | None:
            value = record["attributes"]["updated"]
            return datetime.fromisoformat(value) if value else None

        def inside(record: dict[str, Any]) -> bool:  # a record without a cursor value comes with the open window
            value = updated(record)
            return high is None if value is None else low <= value and (high is None or value < high)

        chosen = [r for r in self.records[parts.path] if inside(r)]
        if "sort" in query:
            assert query["sort"] == "updated"
            chosen.sort(key=updated)
        more = offset + self.per_page < len(chosen) or self.trailing_empty and chosen and offset + self.per_page == len(chosen)
        next_url = f"{parts.path}?{urlencode({**query, 'offset': offset + self.per_page})}" if more else None
        return page(*chosen[offset:offset + self.per_page], next_url=next_url)


class Spy:
    """The real destination; each write's ids and state and each finish's state, in order."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def begin(self, stream, table, *, replace):
        load, calls = self.real.begin(stream, table, replace=replace), self.calls

        class Load:
            def write(self, batch, columns, state, deletes=None):
                calls.append(("write", batch.column("id").to_pylist(), None if state is None else _saved(state)))
                return load.write(batch, columns, state, deletes)

            def finish(self, state):
                calls.append(("finish", _saved(state)))
                load.finish(state)

            def abort(self):
                calls.append(("abort",))
                load.abort()

        return Load()


def _saved(state: dict[str, Any]) -> tuple[dict[str, str], dict[str, list[list[str]]]]:
    state = copy.deepcopy(state)
    return state["cursor"], state.get("covered", {})


class Acme:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp_path = tmp_path
        self.database = tmp_path / "acme.duckdb"
        self.spec = tmp_path / "acme.yaml"
        self.spec.write_text(SPEC)
        self.spy: Spy | None = None
        real_build = engine.run.build_destination

        def build(config):
            self.spy = Spy(real_build(config))
            return self.spy

        monkeypatch.setattr(engine.run, "build_destination", build)

    def run(self, api: ScriptedApi, routes: Windows, resources: dict[str, str], *, now: datetime = NOW, **kw: Any) -> Any:
        api.routes = routes
        path = write_config(self.tmp_path, resources, base_url=api.url, database=self.database, spec=self.spec)
        path.write_text(path.read_text().replace(f"start_date: {START_DATE}", "start_date: '2025-01-01T00:00:00+00:00'"))
        config = Config.from_yaml(path, env={"KLAVIYO_API_KEY": API_KEY})
        (stream,) = engine.run.run(config, now=now, sleep=lambda seconds: None, **kw).streams
        return stream

    def state(self, stream: str) -> dict[str, Any]:
        (row,) = rows(self.database, "select state from kl_klx_state where stream = ?", [stream])
        return json.loads(row["state"])

    def ids(self, stream: str) -> list[str]:
        return [r["id"] for r in rows(self.database, f'select id from "kl_acme_{stream}" order by id')]


@pytest.fixture
def api():
    with ScriptedApi() as server:
        yield server


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Acme:
    return Acme(tmp_path, monkeypatch)


# Jan 1 holds five records (three pages), Jan 2 one, Jan 3 none, the open window one before the run's
# start and one after it (future-dated).
TICKS = {"/ticks": [
    item("a1", iso(1, 1)), item("a2", iso(1, 2)), item("a3", iso(1, 3)), item("a4", iso(1, 4)), item("a5", iso(1, 5)),
    item("b1", iso(2, 5)), item("d1", iso(4, 6)), item("d2", iso(6)),
]}
ALL_TICKS = ["a1", "a2", "a3", "a4", "a5", "b1", "d1", "d2"]


def test_each_commit_saves_the_cursor_to_the_first_gap_and_the_ranges_read_beyond_it(api: ScriptedApi, acme: Acme) -> None:
    routes = Windows(TICKS)
    stream = acme.run(api, routes, {"ticks": "incremental"})
    assert sorted((low, high) for _, low, high in routes.windows) == [(at(1), at(2)), (at(2), at(3)), (at(3), at(4)), (at(4), None)]
    # Pages are taken in rotation: Jan 1 [a1 a2], Jan 2 [b1], Jan 3 [], open [d1 d2], Jan 1 [a3 a4], Jan 1 [a5].
    assert acme.spy.calls == [
        # Read in cursor order, Jan 1 is loaded up to a2: the cursor moves there.
        ("write", ["a1", "a2"], ({"": iso(1, 2)}, {})),
        # b1 and d1 leave gaps below them: their ranges are saved beyond the cursor (Jan 3 has nothing yet).
        ("write", ["b1", "d1"], ({"": iso(1, 2)}, {"": [[iso(2), iso(2, 5)], [iso(4), iso(4, 6)]]})),
        # d2 is future-dated: the open window counts as read up to the run's start, no further.
        ("write", ["d2", "a3"], ({"": iso(1, 3)}, {"": [[iso(2), iso(2, 5)], [iso(4), NOW.isoformat()]]})),
        # a4 is loaded, and Jan 2 and Jan 3 ended: one range from Jan 2 to the run's start.
        ("write", ["a4", "a5"], ({"": iso(1, 5)}, {"": [[iso(2), NOW.isoformat()]]})),
        ("finish", ({"": NOW.isoformat()}, {})),
    ]
    assert acme.ids("ticks") == ALL_TICKS
    assert (stream.events, stream.rows, stream.pages, stream.failed) == (8, 8, 6, False)


def test_a_rerun_reads_only_what_the_failed_run_did_not_cover_and_ends_with_one_cursor(api: ScriptedApi, acme: Acme) -> None:
    failed = acme.run(api, Windows(TICKS, fail=(("/ticks", at(1), 4),)), {"ticks": "incremental"})
    assert failed.failed and failed.error.status == 500
    # Jan 1's third page fails after [a1 a2], [b1 d1], [d2 a3] were committed; a4 was not.
    saved = ({"": iso(1, 3)}, {"": [[iso(2), iso(2, 5)], [iso(4), NOW.isoformat()]]})
    assert [c[0] for c in acme.spy.calls] == ["write", "write", "write", "abort"] and acme.spy.calls[2][2] == saved
    assert _saved(acme.state("ticks")) == saved
    assert acme.ids("ticks") == ["a1", "a2", "a3", "b1", "d1", "d2"]

    routes = Windows(TICKS)
    later = NOW + timedelta(hours=1)
    rerun = acme.run(api, routes, {"ticks": "incremental"}, now=later)
    assert not rerun.failed
    # From the cursor up to the first covered range, the gap between the two (b1 again), then on from the
    # second range's end (the failed run's start), open.
    assert sorted((low, high) for _, low, high in routes.windows) == [(at(1, 3), at(2)), (at(2, 5), at(3, 5)), (at(3, 5), at(4)), (NOW, None)]
    assert acme.spy.calls == [
        ("write", ["a3", "a4"], ({"": iso(1, 4)}, {"": [[iso(2), iso(2, 5)], [iso(4), NOW.isoformat()]]})),
        ("write", ["b1", "d2"], ({"": iso(1, 4)}, {"": [[iso(2), iso(2, 5)], [iso(4), later.isoformat()]]})),
        ("write", ["a5"], ({"": later.isoformat()}, {})),
        ("finish", ({"": later.isoformat()}, {})),
    ]
    assert acme.ids("ticks") == ALL_TICKS
    assert rerun.events == 5


def test_a_failed_lookback_window_does_not_hold_back_the_cursor_saved_before_it(api: ScriptedApi, acme: Acme) -> None:
    records = {"/late": [item("e1", iso(3, 13)), item("e2", iso(3, 14)), item("e3", iso(3, 15)), item("f1", iso(5, 1)), item("f2", iso(5, 2))]}
    acme.run(api, Windows({"/late": records["/late"][:3]}), {"late": "incremental"})
    assert _saved(acme.state("late")) == ({"": NOW.isoformat()}, {})

    # A day later the lookback re-reads from Jan 3 12:00; that window fails on its second page.
    later = NOW + timedelta(days=1)
    routes = Windows(records, fail=(("/late", at(3, 12), 2),))
    stream = acme.run(api, routes, {"late": "incremental"}, now=later)
    assert stream.failed
    assert sorted((low, high) for _, low, high in routes.windows) == [(at(3, 12), NOW), (NOW, None)]
    # Before the saved cursor everything was read by the earlier run: f1 and f2 move the cursor on.
    assert acme.spy.calls == [
        ("write", ["e1", "e2"], ({"": NOW.isoformat()}, {})),
        ("write", ["f1", "f2"], ({"": iso(5, 2)}, {})),
        ("abort",),
    ]
    assert _saved(acme.state("late")) == ({"": iso(5, 2)}, {})


def test_unsorted_windows_count_only_when_ended_and_records_without_a_cursor_say_nothing(api: ScriptedApi, acme: Acme) -> None:
    # Not in cursor order, so a window counts only once read to its end; the open window's records have no
    # `updated` at all (over two pages and an empty third), so it says nothing about how far the read got.
    records = {"/loose": [
        item("a2", iso(1, 2)), item("a1", iso(1, 1)), item("a3", iso(1, 3)),
        item("c2", iso(3, 9)), item("c1", iso(3, 8)),
        item("n1", None), item("n2", None), item("n3", None), item("n4", None),
    ]}
    routes = Windows(records, trailing_empty=True)
    stream = acme.run(api, routes, {"loose": "incremental"})
    assert sorted((low, high) for _, low, high in routes.windows) == [(at(1), at(2)), (at(2), at(3)), (at(3), at(4)), (at(4), None)]
    # Rotation: Jan 1 [a2 a1], Jan 2 [], Jan 3 [c2 c1], open [n1 n2], Jan 1 [a3], Jan 2 ends,
    # Jan 3 [] (trailing), open [n3 n4], Jan 1 ends, Jan 3 ends, open [] (trailing), open ends.
    assert acme.spy.calls == [
        ("write", ["a2", "a1"], ({}, {})),
        ("write", ["c2", "c1"], ({}, {})),
        ("write", ["n1", "n2"], ({}, {})),
        ("write", ["a3", "n3"], ({}, {"": [[iso(2), iso(3)]]})),
        ("write", ["n4"], ({"": iso(4)}, {})),
        ("finish", ({"": iso(4)}, {})),
    ]
    assert (stream.events, stream.rows) == (9, 9)


def test_a_backfill_of_a_sliced_stream_leaves_the_saved_cursor_where_it_was(api: ScriptedApi, acme: Acme) -> None:
    acme.run(api, Windows(TICKS), {"ticks": "incremental"})
    routes = Windows(TICKS)
    window = (at(1), at(3))
    stream = acme.run(api, routes, {"ticks": "incremental"}, now=NOW + timedelta(days=1), window=window)
    assert not stream.failed
    assert sorted((low, high) for _, low, high in routes.windows) == [(at(1), at(2)), (at(2), at(3))]
    assert [c[0] for c in acme.spy.calls] == ["write", "write", "write", "finish"]
    assert all(c[-1] == ({"": NOW.isoformat()}, {}) for c in acme.spy.calls)


def test_a_full_refresh_ignores_ranges_an_earlier_run_covered(api: ScriptedApi, acme: Acme) -> None:
    acme.run(api, Windows(TICKS, fail=(("/ticks", at(1), 4),)), {"ticks": "incremental"})
    before = ({"": iso(1, 3)}, {"": [[iso(2), iso(2, 5)], [iso(4), NOW.isoformat()]]})
    assert _saved(acme.state("ticks")) == before
    # The refresh reads every window again; its open window holds only records without a cursor value,
    # so nothing it reads reaches past Jan 4: the old range up to the run's start must not be trusted.
    records = {"/ticks": [*TICKS["/ticks"][:6], item("n1", None)]}
    stream = acme.run(api, Windows(records), {"ticks": "full_refresh"})
    assert not stream.failed
    # Until finish() the old state stays (the batches leave it as it is: None); then the cursor ends where the
    # refresh's own reading ends.
    assert acme.spy.calls == [
        ("write", ["a1", "a2"], None), ("write", ["b1", "n1"], None), ("write", ["a3", "a4"], None), ("write", ["a5"], None),
        ("finish", ({"": iso(4)}, {})),
    ]
    assert _saved(acme.state("ticks")) == ({"": iso(4)}, {})


def test_a_backfill_of_a_stream_never_read_saves_no_cursor_and_no_covered_range(api: ScriptedApi, acme: Acme) -> None:
    stream = acme.run(api, Windows(TICKS), {"ticks": "incremental"}, window=(at(3), at(4, 12)))
    assert not stream.failed
    # Jan 3 to the run's start was read in full, yet a backfill leaves the stream's state as it was: empty.
    assert acme.spy.calls == [("write", ["d1"], ({}, {})), ("finish", ({}, {}))]


def test_a_backfill_keeps_the_covered_ranges_a_failed_run_saved(api: ScriptedApi, acme: Acme) -> None:
    acme.run(api, Windows(TICKS, fail=(("/ticks", at(1), 4),)), {"ticks": "incremental"})
    saved = ({"": iso(1, 3)}, {"": [[iso(2), iso(2, 5)], [iso(4), NOW.isoformat()]]})
    assert _saved(acme.state("ticks")) == saved
    stream = acme.run(api, Windows(TICKS), {"ticks": "incremental"}, now=NOW + timedelta(hours=1), window=(at(2), at(3)))
    assert not stream.failed
    # The next incremental run still skips what the failed run covered: the backfill changed none of it.
    assert acme.spy.calls == [("write", ["b1"], saved), ("finish", saved)]
