"""engine/run.py pinned down: what each warehouse write carries (rows, cursor, deletes), when a stream stops, what the summary says.

A spy around the real DuckDB destination records every begin/write/finish/abort of a run, so a test can
assert that the cursor goes in with the batch that holds its rows, that a replace load never saves its
new state before finish(), and where batches are cut. The API is scripted (tests/scripted_api.py).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import engine.run
from engine.config import Config
from engine.destinations.duckdb import DuckDBDestination
from engine.errors import ApiError, ConfigError, LockedError, WarehouseError
from engine.state import StateError
from tests.klx_testing import rows, write_config
from tests.scripted_api import API_KEY, ScriptedApi, item, not_found, page

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)

SPEC = """\
api:
  name: Acme
  base_url: https://api.acme.invalid
  auth: {header: Authorization, value: "Bearer {api_key}"}
  records: data
  record_format: jsonapi
  included: included
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
    string_quote: "'"
  retry: {max_attempts: 1, max_wait_seconds: 0}
  batch_rows: 2
  rate_limit_tiers:
    T: {burst: 1, steady: 1}
streams:
  nested:
    path: /nested
    primary_key: [id]
    cursor: {field: meta.updated}
    sync_modes: [incremental]
  dual:
    path: /dual
    primary_key: [id]
    cursor: {field: updated}
    sync_modes: [incremental]
    partitions:
      - name: by
        values: [created, updated]
        cursors:
          created: {field: created}
  paced:
    path: /paced
    primary_key: [id]
    rate_limit: T
    scopes: [paced:read]
  also_paced:
    path: /also_paced
    primary_key: [id]
    rate_limit: T
  items:
    path: /items
    primary_key: [id]
    cursor: {field: updated}
    sync_modes: [full_refresh, incremental]
  unsorted:
    path: /unsorted
    primary_key: [id]
    cursor: {field: updated, sort: false}
    sync_modes: [incremental]
  flagged:
    path: /flagged
    primary_key: [id]
    cursor: {field: updated}
    sync_modes: [full_refresh, incremental]
    record_filter: active
    on_filter_miss: delete
  kinds:
    path: /kinds
    primary_key: [kind, id]
    cursor: {field: updated}
    sync_modes: [incremental]
    partitions:
      - {name: kind, values: [a, b], filter: {field: kind, op: eq}, column: kind}
  groups:
    path: /groups
    primary_key: [id]
    record_filter: "attributes_live || live"
  members:
    path: "/groups/{parent.id}/members"
    parent: {stream: groups, fields: {id: group_id}, skip_statuses: [404]}
    primary_key: [group_id, id]
  seats:
    path: "/groups/{parent.id}/seats/{parent.size}"
    parent: {stream: groups, fields: {id: group_id}, skip_statuses: [404]}
    primary_key: [group_id, id]
  teams:
    path: /teams
    primary_key: [id]
    derived: {owner: "included.owner.name"}
  players:
    path: "/teams/{parent.id}/players"
    parent: {stream: teams, fields: {id: team_id, owner: team_owner}}
    primary_key: [team_id, id]
"""


# The first request of `items` without a saved cursor: from start_date, in cursor order.
FIRST_ITEMS = "/items?filter=greater-or-equal(updated,2024-01-01T00:00:00%2B00:00)&sort=updated"


def day(n: int) -> str:
    return f"2025-01-{n:02d}T00:00:00+00:00"


class SpyLoad:
    def __init__(self, calls: list, stream: str, load: Any) -> None:
        self.calls, self.stream, self.load = calls, stream, load

    def write(self, batch, columns, state, deletes=None):
        keys = None if deletes is None else deletes.to_pylist()
        self.calls.append(("write", self.stream, batch.column("id").to_pylist(), copy.deepcopy(state), keys))
        return self.load.write(batch, columns, state, deletes)

    def finish(self, state):
        self.calls.append(("finish", self.stream, copy.deepcopy(state)))
        return self.load.finish(state)

    def abort(self):
        self.calls.append(("abort", self.stream))
        self.load.abort()


class Spy:
    """The real destination, with every load's calls recorded in order."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def begin(self, stream, table, *, replace):
        self.calls.append(("begin", stream, replace, table.primary_key, table.cursor))
        return SpyLoad(self.calls, stream, self.real.begin(stream, table, replace=replace))

    def of(self, kind: str, stream: str) -> list[tuple]:
        return [c[2:] for c in self.calls if c[0] == kind and c[1] == stream]


@pytest.fixture
def api():
    with ScriptedApi() as server:
        yield server


class Setup:
    def __init__(self, api: ScriptedApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.api, self.tmp_path = api, tmp_path
        self.database = tmp_path / "acme.duckdb"
        self.spec = tmp_path / "acme.yaml"
        self.spec.write_text(SPEC)
        self.spies: list[Spy] = []
        real_build = engine.run.build_destination

        def build(config):
            spy = Spy(real_build(config))
            self.spies.append(spy)
            return spy

        monkeypatch.setattr(engine.run, "build_destination", build)

    def config(self, resources: dict[str, str]) -> Config:
        path = write_config(self.tmp_path, resources, base_url=self.api.url, database=self.database, spec=self.spec)
        return Config.from_yaml(path, env={"KLAVIYO_API_KEY": API_KEY})

    def run(self, resources: dict[str, str], **kw: Any) -> engine.run.RunSummary:
        kw.setdefault("now", NOW)
        kw.setdefault("sleep", lambda seconds: None)
        return engine.run.run(self.config(resources), **kw)

    @property
    def spy(self) -> Spy:
        return self.spies[-1]

    def table(self, name: str, columns: str = "*") -> list[dict]:
        return rows(self.database, f'select {columns} from "kl_acme_{name}" order by all')

    def state(self, stream: str) -> dict:
        (row,) = rows(self.database, "select state from kl_klx_state where stream = ?", [stream])
        return json.loads(row["state"])


@pytest.fixture
def acme(api: ScriptedApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    return Setup(api, tmp_path, monkeypatch)


def query(request: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request).query)


def cursor_of(state: dict) -> dict:
    return state["cursor"]


# -- batches and the cursor that goes with them ------------------------------------------------------


def test_a_full_refresh_orders_its_batches_by_uuid_ts_even_when_the_clock_stands_still(acme: Setup, monkeypatch) -> None:
    # The destination resolves a key written in two batches of a full refresh by their uuid_ts: it must grow.
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return NOW

    monkeypatch.setattr(engine.run, "datetime", Frozen)
    acme.api.routes["/items"] = page(item("i1", day(1)), item("i2", day(2)), item("i3", day(3)), next_url="/items?page=2")
    acme.api.routes["/items?page=2"] = page(item("i1", day(4)), item("i4", day(5)))  # i1 again, updated meanwhile
    (stream,) = acme.run({"items": "full_refresh"}).streams
    loaded = rows(acme.database, "select id, updated, uuid_ts from kl_acme_items order by id")
    assert [(r["id"], r["updated"].day) for r in loaded] == [("i1", 4), ("i2", 2), ("i3", 3), ("i4", 5)]
    assert sorted({r["uuid_ts"] for r in loaded}) == [NOW, NOW + timedelta(microseconds=1), NOW + timedelta(microseconds=2)]
    assert (stream.inserted, stream.updated) == (4, 1)


def test_a_sorted_stream_commits_every_batch_rows_with_the_cursor_of_the_rows_it_holds(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(1)), item("i2", day(2)), item("i3", day(3)), next_url="/items?page=2")
    acme.api.routes["/items?page=2"] = page(item("i4", day(4)), item("i5", day(5)))
    (stream,) = acme.run({"items": "incremental"}).streams
    assert acme.spy.of("begin", "items") == [(False, ("id",), "updated")]
    writes = acme.spy.of("write", "items")
    assert [(ids, cursor_of(state), deletes) for ids, state, deletes in writes] == [
        (["i1", "i2"], {"": day(2)}, None),
        (["i3", "i4"], {"": day(4)}, None),
        (["i5"], {"": day(5)}, None),
    ]
    assert [cursor_of(s) for (s,) in acme.spy.of("finish", "items")] == [{"": day(5)}]
    assert acme.state("items")["cursor"] == {"": day(5)}
    assert (stream.events, stream.rows, stream.pages, stream.rejected, stream.inserted, stream.updated) == (5, 5, 2, 0, 5, 0)
    assert stream.failed is False and stream.warnings == []


def test_an_unsorted_stream_saves_its_cursor_only_with_the_last_batch(acme: Setup) -> None:
    acme.api.routes["/unsorted"] = page(item("u1", day(3)), item("u2", day(1)), item("u3", day(2)))
    acme.run({"unsorted": "incremental"})
    writes = acme.spy.of("write", "unsorted")
    assert [(ids, cursor_of(state)) for ids, state, _ in writes] == [(["u1", "u2"], {}), (["u3"], {"": day(3)})]
    assert "sort" not in query(acme.api.requests[0])


def test_a_failure_after_a_commit_keeps_that_batch_and_its_cursor(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(1)), item("i2", day(2)), item("i3", day(3)), next_url="/items?page=2")
    acme.api.routes["/items?page=2"] = (500, {"errors": [{"detail": "Boom."}]})
    (stream,) = acme.run({"items": "incremental"}).streams
    assert stream.failed and stream.error.status == 500
    assert [c[0] for c in acme.spy.calls] == ["begin", "write", "abort"]
    assert acme.state("items")["cursor"] == {"": day(2)}
    assert [r["id"] for r in acme.table("items", "id")] == ["i1", "i2"]
    assert (stream.events, stream.rows, stream.pages) == (3, 2, 1)  # rows: what it committed, not what it read
    assert (stream.inserted, stream.updated) == (2, 0)


def test_a_cleanup_that_fails_after_a_failed_write_reports_the_write(acme: Setup, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    # A PostgreSQL session ended mid-load fails the write, then the shadow's DROP TABLE: the summary and klx_runs
    # named only the DROP TABLE ("the connection is closed"), never what went wrong.
    def lost(self, batch, columns, state, deletes=None):
        raise WarehouseError("INSERT on table kl_acme_items__klx_shadow failed: terminating connection due to administrator command")

    def closed(self):
        raise WarehouseError("DROP TABLE on table kl_acme_items__klx_shadow failed: the connection is closed")

    monkeypatch.setattr(SpyLoad, "write", lost)
    monkeypatch.setattr(SpyLoad, "abort", closed)
    acme.api.routes["/items"] = page(item("i1", day(1)))
    with caplog.at_level(logging.WARNING, logger="klx.run"):
        (stream,) = acme.run({"items": "full_refresh"}).streams
    assert str(stream.error) == "INSERT on table kl_acme_items__klx_shadow failed: terminating connection due to administrator command"
    assert "stream items: cleaning up after the failure failed too: DROP TABLE on table kl_acme_items__klx_shadow failed: " \
           "the connection is closed" in caplog.messages


@pytest.mark.parametrize("answers", [False, True])
def test_a_warehouse_that_stops_answering_stops_the_run_and_one_refusing_a_load_fails_its_stream(
    acme: Setup, monkeypatch: pytest.MonkeyPatch, answers: bool
) -> None:
    # Walkthrough: with the PostgreSQL session ended, the other streams read the API to their end, then failed
    # at their first write. A load's failure is now followed by one SELECT 1: no answer, and the run stops.
    written = SpyLoad.write

    def refused(self, batch, columns, state, deletes=None):
        if self.stream != "items":
            return written(self, batch, columns, state, deletes)
        raise WarehouseError("MERGE on table kl_acme_items failed: the connection is closed")

    monkeypatch.setattr(SpyLoad, "write", refused)
    monkeypatch.setattr(DuckDBDestination, "alive", lambda self: answers)
    acme.api.routes["/items"] = page(item("i1", day(1)))
    acme.api.routes["/kinds"] = page(item("k1", day(1)))
    if answers:  # another refusal (a type, a constraint): that stream fails, the others load
        summary = acme.run({"items": "incremental", "kinds": "incremental"})
        assert [(s.stream, str(s.error) if s.error else None) for s in summary.streams] == [
            ("items", "MERGE on table kl_acme_items failed: the connection is closed"), ("kinds", None)]
        return
    with pytest.raises(WarehouseError, match="^MERGE on table kl_acme_items failed: the connection is closed$"):
        acme.run({"items": "incremental", "kinds": "incremental"})


def test_a_load_that_lost_the_destination_s_claim_stops_the_run(acme: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    # A destination whose claim on the schema and prefix lapsed and was taken by another run (Snowflake's claim row)
    # refuses every statement from then on: the run stops there, rather than fail its streams one after another
    # while the run that took the claim loads the same tables.
    written = SpyLoad.write

    def lost(self, batch, columns, state, deletes=None):
        if self.stream != "items":
            return written(self, batch, columns, state, deletes)
        raise LockedError("schema main with table prefix 'kl_acme_': this run's claim lapsed and another klx run took it")

    monkeypatch.setattr(SpyLoad, "write", lost)
    monkeypatch.setattr(DuckDBDestination, "alive", lambda self: True)  # the warehouse still answers
    acme.api.routes["/items"] = page(item("i1", day(1)))
    acme.api.routes["/kinds"] = page(item("k1", day(1)))
    with pytest.raises(LockedError, match="another klx run took it"):
        acme.run({"items": "incremental", "kinds": "incremental"})


def test_batches_are_also_cut_by_response_bytes(acme: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    body = page(*[item(f"i{n}", day(n)) for n in range(1, 7)])
    share = len(json.dumps(body).encode()) // 6
    monkeypatch.setattr(engine.run, "BATCH_BYTES", share)  # each record's share of its page fills a batch
    acme.api.routes["/items"] = body
    acme.run({"items": "incremental"})
    assert [ids for ids, _, _ in acme.spy.of("write", "items")] == [[f"i{n}"] for n in range(1, 7)]
    monkeypatch.setattr(engine.run, "BATCH_BYTES", share + 1)  # two records go over it: the rows bound (2) cuts first
    acme.run({"items": "incremental"})
    assert [ids for ids, _, _ in acme.spy.of("write", "items")] == [["i1", "i2"], ["i3", "i4"], ["i5", "i6"]]


def test_a_one_record_page_counts_its_whole_size(acme: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    acme.api.routes["/items"] = page(item("i1", day(1)), next_url="/items?page=2")
    acme.api.routes["/items?page=2"] = page(item("i2", day(2)))
    monkeypatch.setattr(engine.run, "BATCH_BYTES", len(json.dumps(acme.api.routes["/items"]).encode()))
    acme.run({"items": "incremental"})
    assert [(ids, cursor_of(s)) for ids, s, _ in acme.spy.of("write", "items")] == [(["i1"], {"": day(1)}), (["i2"], {"": day(2)})]


def test_the_cursor_never_passes_the_run_start_nor_moves_back(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(4)), item("future", "2027-03-01T00:00:00+00:00"))
    acme.run({"items": "incremental"})
    assert acme.state("items")["cursor"] == {"": NOW.isoformat()}
    acme.api.routes["/items"] = page(item("old", day(1)))  # a lookback re-read of older records
    acme.run({"items": "incremental"}, now=datetime(2026, 11, 2, tzinfo=timezone.utc))
    assert acme.state("items")["cursor"] == {"": NOW.isoformat()}


def test_an_empty_bounded_read_saves_the_run_start_and_a_backfill_saves_nothing(acme: Setup) -> None:
    acme.api.routes["/items"] = page()
    (stream,) = acme.run({"items": "incremental"}).streams
    assert acme.state("items")["cursor"] == {"": NOW.isoformat()} and stream.pages == 1
    acme.api.routes["/items"] = page(item("i1", day(1)), item("i2", day(2)), item("i3", day(3)))
    window = (datetime(2025, 1, 1, tzinfo=timezone.utc), datetime(2025, 2, 1, tzinfo=timezone.utc))
    acme.run({"items": "incremental"}, window=window)
    assert [cursor_of(s) for _, s, _ in acme.spy.of("write", "items")] == [{"": NOW.isoformat()}] * 2
    assert acme.state("items")["cursor"] == {"": NOW.isoformat()}
    assert [r["id"] for r in acme.table("items", "id")] == ["i1", "i2", "i3"]


def test_a_full_refresh_without_a_lower_bound_read_empty_saves_no_cursor(acme: Setup) -> None:
    acme.api.routes["/kinds"] = page()
    acme.api.routes["/groups"] = page()
    acme.run({"groups": "full_refresh"}, allow_empty=True)
    assert acme.state("groups")["cursor"] == {}


# -- full refresh swap vs incremental merge ----------------------------------------------------------


def test_a_full_refresh_keeps_the_old_state_until_finish_and_swaps_the_table(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("old", day(1)), item("i2", day(2)))
    acme.run({"items": "incremental"})
    old_state = acme.state("items")
    acme.api.routes["/items"] = page(item("i2", day(3)), item("i3", day(4)), item("i4", day(5)))
    (stream,) = acme.run({"items": "full_refresh"}).streams
    assert acme.spy.of("begin", "items") == [(True, ("id",), "updated")]
    # Its batches leave the saved state as it is (None): the old one stays until finish().
    assert [(ids, state) for ids, state, _ in acme.spy.of("write", "items")] == [(["i2", "i3"], None), (["i4"], None)]
    assert old_state is not None
    assert [cursor_of(s) for (s,) in acme.spy.of("finish", "items")] == [{"": day(5)}]
    assert [r["id"] for r in acme.table("items", "id")] == ["i2", "i3", "i4"]
    assert (stream.mode, stream.rows, stream.inserted, stream.updated) == ("full_refresh", 3, 3, 0)
    # Incremental again: merged into the table, from the cursor the refresh saved.
    acme.api.routes["/items"] = page(item("i3", day(6)), item("i4", day(6)), item("i5", day(7)))
    (stream,) = acme.run({"items": "incremental"}).streams
    assert query(acme.api.requests[-1]) == {"filter": ["greater-or-equal(updated,2025-01-05T00:00:00+00:00)"], "sort": ["updated"]}
    assert [r["id"] for r in acme.table("items", "id")] == ["i2", "i3", "i4", "i5"]
    assert (stream.mode, stream.inserted, stream.updated, stream.columns_added) == ("incremental", 1, 2, [])  # over two batches
    # A new attribute is one added column, however many batches carry it.
    acme.api.routes["/items"] = page(*[item(f"c{n}", day(8), color="red") for n in range(3)])
    (stream,) = acme.run({"items": "incremental"}).streams
    assert len(acme.spy.of("write", "items")) == 2 and stream.columns_added == ["color"]


def test_an_empty_full_refresh_of_a_table_with_rows_is_refused_with_exit_6(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("a", day(1)))
    acme.run({"items": "full_refresh"})
    acme.api.routes["/items"] = page()
    summary = acme.run({"items": "full_refresh"})
    assert isinstance(summary.streams[0].error, engine.run.EmptyReplaceRefused) and summary.exit_code == 6
    assert acme.spy.of("finish", "items") == [] and acme.spy.of("abort", "items") == [()]
    assert str(summary.streams[0].error) == (
        "stream items: the full refresh read no rows, so table kl_acme_items keeps its 1 rows and the stream its state\n"
        "  hint: a start_date in the future or a lost API scope empties a stream; "
        "if the source really is empty, run again with `klx run --allow-empty`"
    )
    assert acme.run({"items": "incremental"}).exit_code == 0  # incremental reads of nothing are never refused
    assert acme.run({"items": "full_refresh"}, allow_empty=True).exit_code == 0
    assert acme.table("items") == []


# -- rejected records ----------------------------------------------------------------------------------


def test_an_item_that_is_not_an_object_is_rejected_with_its_kind_and_page(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(1)), "junk", *[item(f"g{n}", day(1)) for n in range(9)])
    (stream,) = acme.run({"items": "incremental"}).streams
    reason = "a record that is a string, not an object"
    assert not stream.failed and (stream.events, stream.rows, stream.rejected) == (11, 10, 1)
    assert stream.warnings == [f"a record from GET {FIRST_ITEMS} rejected: {reason}", f"1 record rejected and not stored (first: {reason})"]


def test_exactly_one_in_ten_rejected_is_tolerated_and_more_stops_the_stream(acme: Setup, caplog: pytest.LogCaptureFixture) -> None:
    good = [item(f"g{n}", day(1)) for n in range(90)]
    bad = [item(None, day(1)) for _ in range(10)]
    acme.api.routes["/items"] = page(*bad, *good)
    with caplog.at_level(logging.WARNING, logger="klx.run"):
        (stream,) = acme.run({"items": "incremental"}).streams
    assert not stream.failed and (stream.events, stream.rows, stream.rejected) == (100, 90, 10)
    reason = "primary key id is missing or null"
    assert stream.warnings == [f"a record from GET {FIRST_ITEMS} rejected: {reason}"] * 5 + [f"10 records rejected and not stored (first: {reason})"]
    assert f"stream items: 10 records rejected and not stored (first: {reason})" in caplog.messages
    acme.api.routes["/items"] = page(*bad, *good[:89])
    summary = acme.run({"items": "incremental"})
    assert summary.streams[0].failed and summary.exit_code == 3 and summary.rejected == 10
    assert summary.streams[0].error.message.startswith("stream items: 10 of the 99 records read were rejected")


def test_fewer_rejections_than_the_minimum_never_stop_a_stream(acme: Setup) -> None:
    acme.api.routes["/items"] = page(*[item(None, day(1)) for _ in range(9)], item("a", day(1)))
    (stream,) = acme.run({"items": "incremental"}).streams
    assert not stream.failed and (stream.rows, stream.rejected) == (1, 9)


def test_rejections_are_checked_page_by_page(acme: Setup) -> None:
    acme.api.routes["/items"] = page(*[item(None, day(1)) for _ in range(10)], item("a", day(1)), next_url="/items?page=2")
    acme.api.routes["/items?page=2"] = page(*[item(f"g{n}", day(2)) for n in range(200)])
    (stream,) = acme.run({"items": "incremental"}).streams
    assert stream.failed and stream.error.message.startswith("stream items: 10 of the 11 records read were rejected")
    assert stream.error.url == FIRST_ITEMS and stream.error.stream == "items" and stream.pages == 1
    assert stream.error.hint == "check the stream's primary_key in the spec against what the API now returns"


# -- filters and deletes -------------------------------------------------------------------------------


def flag(ident: str, active: bool, updated: str = day(1)) -> dict:
    return item(ident, updated, active=active)


def test_an_incremental_read_deletes_what_the_filter_now_drops_in_the_batch_it_was_read_with(acme: Setup) -> None:
    acme.api.routes["/flagged"] = page(flag("a", True), flag("b", True), flag("c", True))
    acme.run({"flagged": "incremental"})
    acme.api.routes["/flagged"] = page(flag("b", False, day(2)), flag("x", False, day(2)), flag("x", True, day(3)), flag("c", True, day(4)),
                                       flag("d", True, day(4)), flag("a", False, day(5)))
    (stream,) = acme.run({"flagged": "incremental"}).streams
    writes = acme.spy.of("write", "flagged")
    # x dropped then kept again in the same batch stays; the last batch holds a delete and no row.
    assert [(ids, deletes) for ids, _, deletes in writes] == [(["x"], [{"id": "b"}]), (["c", "d"], None), ([], [{"id": "a"}])]
    assert [cursor_of(state) for _, state, _ in writes] == [{"": day(3)}, {"": day(4)}, {"": day(5)}]  # deletes commit with the cursor too
    assert [r["id"] for r in acme.table("flagged", "id")] == ["c", "d", "x"]
    assert (stream.events, stream.rows) == (6, 3)
    assert acme.state("flagged")["cursor"] == {"": day(5)}  # a dropped record still moves the cursor


def test_a_full_refresh_with_on_filter_miss_delete_sends_no_deletes(acme: Setup) -> None:
    acme.api.routes["/flagged"] = page(flag("a", True), flag("b", False))
    acme.run({"flagged": "full_refresh"})
    assert [(ids, deletes) for ids, _, deletes in acme.spy.of("write", "flagged")] == [(["a"], None)]


def test_a_filtered_record_without_a_key_is_not_deleted(acme: Setup) -> None:
    acme.api.routes["/flagged"] = page(flag("a", True), item(None, day(1), active=False))
    (stream,) = acme.run({"flagged": "incremental"}).streams
    assert [(ids, deletes) for ids, _, deletes in acme.spy.of("write", "flagged")] == [(["a"], None)]
    assert stream.rejected == 0 and not stream.failed


# -- partitions and parents ----------------------------------------------------------------------------


def test_each_partition_reads_on_its_own_carries_its_column_and_keeps_its_cursor(acme: Setup) -> None:
    acme.api.routes["/kinds"] = page(item("k1", day(1)), item("k2", day(2)), item("k3", day(3)))
    (stream,) = acme.run({"kinds": "incremental"}).streams
    assert acme.table("kinds", "kind, id") == [
        {"kind": kind, "id": ident} for kind in ("a", "b") for ident in ("k1", "k2", "k3")
    ]
    assert acme.state("kinds")["cursor"] == {"kind=a": day(3), "kind=b": day(3)}
    assert (stream.events, stream.rows, stream.pages) == (6, 6, 2)
    writes = acme.spy.of("write", "kinds")
    assert [cursor_of(s) for _, s, _ in writes] == [{"kind=a": day(2)}, {"kind=a": day(3), "kind=b": day(1)}, {"kind=a": day(3), "kind=b": day(3)}]


def test_a_child_stream_reads_once_per_kept_parent_over_every_parent_page(acme: Setup) -> None:
    # A filtered-out and a rejected parent are passed over; the kept parent after them on the same page is read.
    acme.api.routes["/groups"] = page(
        item("g1", live=True), item("off", live=False), {"type": "group"}, item("g3", live=True), next_url="/groups?page=2"
    )
    acme.api.routes["/groups?page=2"] = page(item("g2", live=True))
    acme.api.routes["/groups/g1/members"] = page(item("m1"), item("m2"))
    acme.api.routes["/groups/g2/members"] = page(item("m1"))
    acme.api.routes["/groups/g3/members"] = page(item("m3"))
    (stream,) = acme.run({"members": "full_refresh"}).streams
    assert sorted(r for r in acme.api.requests if "members" in r) == ["/groups/g1/members", "/groups/g2/members", "/groups/g3/members"]
    assert acme.table("members", "group_id, id") == [
        {"group_id": "g1", "id": "m1"}, {"group_id": "g1", "id": "m2"}, {"group_id": "g2", "id": "m1"}, {"group_id": "g3", "id": "m3"}
    ]
    assert (stream.events, stream.rows, stream.pages, stream.rejected, stream.warnings) == (4, 4, 3, 0, [])
    assert acme.spy.of("begin", "members") == [(True, ("group_id", "id"), None)]


def test_a_parent_field_computed_from_an_included_resource_reaches_the_child_rows(acme: Setup) -> None:
    owner = {"owner": {"data": {"type": "person", "id": "p1"}}}
    acme.api.routes["/teams"] = {
        "data": [{"type": "team", "id": "t1", "attributes": {}, "relationships": owner}],
        "included": [{"type": "person", "id": "p1", "attributes": {"name": "Ann"}}],
        "links": {"next": None},
    }
    acme.api.routes["/teams/t1/players"] = page(item("x1"))
    acme.run({"players": "full_refresh"})
    assert acme.table("players", "team_id, team_owner, id") == [{"team_id": "t1", "team_owner": "Ann", "id": "x1"}]
    acme.run({"teams": "full_refresh"})  # and the stream's own rows get it from their page's included resources
    assert acme.table("teams", "id, owner") == [{"id": "t1", "owner": "Ann"}]


def test_warnings_are_capped_per_stream_but_all_logged(acme: Setup, caplog: pytest.LogCaptureFixture) -> None:
    acme.api.routes["/groups"] = page(*[item(f"g{n}", live=True) for n in range(25)])
    for n in range(25):
        acme.api.routes[f"/groups/g{n}/members"] = not_found()
    with caplog.at_level(logging.WARNING, logger="klx.run"):
        summary = acme.run({"members": "full_refresh"}, allow_empty=True)
    (stream,) = summary.streams
    assert stream.warnings == [f"parent groups id=g{n} skipped: Acme answered 404 on GET /groups/g{n}/members" for n in range(20)]
    assert [m for m in caplog.messages if "skipped" in m] == [
        f"stream members: parent groups id=g{n} skipped: Acme answered 404 on GET /groups/g{n}/members" for n in range(25)
    ]
    assert summary.warnings == [f"members: {w}" for w in stream.warnings]


def test_a_parent_id_is_checked_and_encoded_before_it_goes_in_a_path(acme: Setup) -> None:
    acme.api.routes["/groups"] = page(
        {"type": "group", "id": 7, "attributes": {"live": True}}, item(None, live=True), item("", live=True), item("a b", live=True),
        item("..", live=True), item(" . ", live=True),
    )
    acme.api.routes["/members"] = page(item("stolen"))  # where /groups/../members would land
    acme.api.routes["/groups/7/members"] = page(item("m7"))
    acme.api.routes["/groups/a%20b/members"] = page(item("m1"))
    (stream,) = acme.run({"members": "full_refresh"}).streams
    assert acme.table("members", "group_id, id") == [{"group_id": "7", "id": "m7"}, {"group_id": "a b", "id": "m1"}]
    assert stream.warnings == [
        "a groups record from GET /groups skipped: id is missing or null",
        "a groups record from GET /groups skipped: id is an empty string",
        "a groups record from GET /groups skipped: id is '..', a path segment that would change the request path",
        "a groups record from GET /groups skipped: id is ' . ', a path segment that would change the request path",
    ]
    assert sorted(r for r in acme.api.requests if "members" in r) == ["/groups/7/members", "/groups/a%20b/members"]


def test_a_path_with_two_parent_fields_names_both_when_the_parent_is_gone(acme: Setup) -> None:
    acme.api.routes["/groups"] = page(item("g1", live=True, size=3), item("g2", live=True, size="x/y"))
    acme.api.routes["/groups/g2/seats/x%2Fy"] = page(item("s1"))
    (stream,) = acme.run({"seats": "full_refresh"}).streams
    assert stream.warnings == ["parent groups id=g1, size=3 skipped: Acme answered 404 on GET /groups/g1/seats/3"]
    assert acme.table("seats", "group_id, id") == [{"group_id": "g2", "id": "s1"}]


# -- the run and its summary -------------------------------------------------------------------------


def test_the_summary_adds_up_the_streams_and_reports_each_as_it_ends(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(1)), item(None, day(1)), item("i2", day(2)))
    acme.api.routes["/unsorted"] = (403, {"errors": [{"detail": "No."}]})
    acme.api.routes["/kinds"] = page(item("k1", day(1)))
    reported = []
    summary = acme.run({"items": "incremental", "unsorted": "incremental", "kinds": "incremental"},
                       on_stream=reported.append, job_run_id="job-1")
    assert [s.stream for s in summary.streams] == ["items", "unsorted", "kinds"]
    assert sorted(s.stream for s in reported) == ["items", "kinds", "unsorted"]
    assert (summary.job_run_id, summary.started_at, summary.events, summary.rejected) == ("job-1", NOW, 5, 1)
    assert [s.stream for s in summary.failed] == ["unsorted"] and summary.exit_code == 3
    assert summary.warnings == [
        f"items: a record from GET {FIRST_ITEMS} rejected: primary key id is missing or null",
        "items: 1 record rejected and not stored (first: primary key id is missing or null)",
    ]
    assert all(0 < s.seconds < 60 for s in summary.streams)
    loaded = acme.table("items", "context_sources_job_run_id, context_sources_task_run_id")
    kinds = acme.table("kinds", "context_sources_job_run_id, context_sources_task_run_id")
    assert {r["context_sources_job_run_id"] for r in loaded + kinds} == {"job-1"}
    assert len({r["context_sources_task_run_id"] for r in loaded}) == 1
    assert {r["context_sources_task_run_id"] for r in loaded}.isdisjoint(r["context_sources_task_run_id"] for r in kinds)


def test_only_runs_the_named_streams(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(1)))
    summary = acme.run({"items": "incremental", "unsorted": "incremental"}, only=("items",))
    assert [s.stream for s in summary.streams] == ["items"] and "/unsorted" not in acme.api.requests


def test_only_reads_the_named_streams_from_their_saved_cursors(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(1)))
    acme.run({"items": "incremental", "unsorted": "incremental"}, only=("items",))
    assert acme.state("items")["cursor"] == {"": day(1)}
    acme.api.requests.clear()
    acme.run({"items": "incremental", "unsorted": "incremental"}, only=("items",))
    (request,) = acme.api.requests
    assert query(request)["filter"] == [f"greater-or-equal(updated,{day(1)})"]  # not from start_date (2024-01-01)


def test_an_unreadable_state_fails_its_stream_only_and_is_left_as_it_was(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(1)))
    acme.api.routes["/unsorted"] = page(item("u1", day(1)))
    acme.run({"items": "incremental", "unsorted": "incremental"})
    import duckdb

    with duckdb.connect(str(acme.database)) as con:
        con.execute("update kl_klx_state set state = '{\"cursor\": 5}' where stream = 'items'")
    summary = acme.run({"items": "incremental", "unsorted": "incremental"})
    items, unsorted = summary.streams
    assert isinstance(items.error, StateError) and (items.stream, items.table, items.mode) == ("items", "kl_acme_items", "incremental")
    assert summary.exit_code == items.error.exit_code == 4
    assert not unsorted.failed
    assert [c[1] for c in acme.spy.calls if c[0] == "begin"] == ["unsorted"]
    assert rows(acme.database, "select state from kl_klx_state where stream = 'items'") == [{"state": '{"cursor": 5}'}]


@pytest.mark.parametrize("answer", [(500, {"errors": [{"detail": "Boom."}]}), "<html>not JSON</html>"])
def test_a_stream_the_api_fails_does_not_stop_the_next(acme: Setup, answer) -> None:
    acme.api.routes["/items"] = answer
    acme.api.routes["/unsorted"] = page(item("u1", day(1)))
    summary = acme.run({"items": "incremental", "unsorted": "incremental"})
    assert [(s.stream, s.failed) for s in summary.streams] == [("items", True), ("unsorted", False)]
    assert [r["id"] for r in acme.table("unsorted", "id")] == ["u1"]
    assert "(stream items)" in str(summary.streams[0].error)  # the request was sent as the stream's own


def test_a_refused_key_stops_the_whole_run(acme: Setup) -> None:
    acme.api.routes["/items"] = (401, {"errors": [{"detail": "Bad key."}]})
    acme.api.routes["/unsorted"] = page(item("u1", day(1)))
    with pytest.raises(ApiError) as raised:
        acme.run({"items": "incremental", "unsorted": "incremental"})
    assert raised.value.status == 401 and not any(r.startswith("/unsorted") for r in acme.api.requests)


def test_a_run_without_a_job_id_gets_a_fresh_uuid(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(1)))
    first, second = (acme.run({"items": "incremental"}).job_run_id for _ in range(2))
    assert first != second and all(str(uuid.UUID(run_id)) == run_id for run_id in (first, second))
    assert {r["context_sources_job_run_id"] for r in acme.table("items")} == {first}  # the run that wrote the row


def test_the_full_refresh_flag_replaces_incremental_streams(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(1)))
    (stream,) = acme.run({"items": "incremental"}, full_refresh=True).streams
    assert stream.mode == "full_refresh" and acme.spy.of("begin", "items") == [(True, ("id",), "updated")]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"only": ("nope",)}, "--streams: 'nope' is not among the resources"),
        ({"only": ("groups",), "window": (NOW.replace(year=2025), NOW)}, "--streams: 'groups' is full_refresh"),
        ({"full_refresh": True, "window": (NOW.replace(year=2025), NOW)}, "--start/--end re-read a window of incremental streams"),
    ],
)
def test_a_selection_error_stops_the_run_before_the_destination_is_touched(acme: Setup, kw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        acme.run({"items": "incremental", "groups": "full_refresh"}, **kw)
    assert str(raised.value).startswith(message)
    assert acme.spies == [] and not acme.database.exists() and acme.api.requests == []


class Waited(Exception):
    """Raised by a test's sleep: the run wanted to wait."""


def test_each_path_is_paced_by_its_own_rate_limit_budget(acme: Setup) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise Waited

    acme.api.routes["/paced"] = page(item("p1"))
    acme.api.routes["/also_paced"] = page(item("q1"))
    summary = acme.run({"paced": "full_refresh", "also_paced": "full_refresh"}, sleep=sleep)
    assert waits == [] and not summary.failed  # one request on each path: each fits its own budget
    acme.api.routes["/paced"] = page(item("p1"), next_url="/paced?page=2")
    acme.api.routes["/paced?page=2"] = page(item("p2"))
    with pytest.raises(Waited):
        acme.run({"paced": "full_refresh"}, sleep=sleep)
    assert len(waits) == 1 and 30 < waits[0] <= 60.25  # the tier allows one request a minute on /paced


def test_a_refusal_names_the_scopes_the_stream_needs(acme: Setup) -> None:
    acme.api.routes["/paced"] = (403, {"errors": [{"detail": "No."}]})
    (stream,) = acme.run({"paced": "full_refresh"}).streams
    assert stream.error.hint == "the key lacks a scope this stream needs: paced:read"


class Recorder:
    """A run's observer that keeps what it was told (the parts run.py tells)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def planned(self, streams):
        self.calls.append(("planned", list(streams)))

    def started(self, stream):
        self.calls.append(("started", stream))

    def page(self, stream, records):
        self.calls.append(("page", stream, records))

    def finished(self, summary):
        self.calls.append(("finished", summary.stream, summary.rows, summary.failed))

    def request(self, stream, url, status, seconds):
        pass

    def retry(self, stream, why, wait):
        pass

    def throttled(self, stream, seconds):
        pass


def test_an_observer_hears_the_plan_each_stream_start_every_page_and_each_end(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(1)), item("i2", day(2)), item("i3", day(3)), next_url="/items?page=2")
    acme.api.routes["/items?page=2"] = page(item("i4", day(4)))
    acme.api.routes["/unsorted"] = (403, {"errors": [{"detail": "No."}]})
    recorder = Recorder()
    acme.run({"items": "incremental", "unsorted": "incremental"}, events=recorder)
    assert recorder.calls[0] == ("planned", [("items", "incremental"), ("unsorted", "incremental")])
    items = [c for c in recorder.calls if "items" in c]
    assert items == [("started", "items"), ("page", "items", 3), ("page", "items", 1), ("finished", "items", 4, False)]
    assert [c for c in recorder.calls if "unsorted" in c] == [("started", "unsorted"), ("finished", "unsorted", 0, True)]


def test_a_stream_cut_short_by_the_run_stopping_is_heard_with_what_it_committed(acme: Setup) -> None:
    # A refused key (or Ctrl-C) stops the run from inside a stream: its summary never came back, so the run's
    # summary and klx_runs said 0 rows and 0 inserted for a table holding the batches it had committed.
    acme.api.routes["/items"] = page(item("i1", day(1)), item("i2", day(2)), item("i3", day(3)), next_url="/items?page=2")
    acme.api.routes["/items?page=2"] = (401, {"errors": [{"detail": "Key revoked."}]})
    recorder = Recorder()
    with pytest.raises(ApiError):
        acme.run({"items": "incremental"}, events=recorder)
    assert [c for c in recorder.calls if c[0] == "finished"] == [("finished", "items", 2, True)]
    assert [r["id"] for r in acme.table("items", "id")] == ["i1", "i2"]


def test_a_failed_full_refresh_counts_no_rows_for_it_changed_nothing(acme: Setup) -> None:
    # Its committed batches went into the shadow table, dropped on failure: the table is as it was.
    acme.api.routes["/items"] = page(item("i1", day(1)), item("i2", day(2)), item("i3", day(3)), next_url="/items?page=2")
    acme.api.routes["/items?page=2"] = (500, {"errors": [{"detail": "Boom."}]})
    (stream,) = acme.run({"items": "full_refresh"}).streams
    assert stream.failed and (stream.events, stream.rows, stream.inserted, stream.updated) == (3, 0, 0, 0)
    acme.api.routes["/items?page=2"] = page(item("i4", day(4)))
    (stream,) = acme.run({"items": "full_refresh"}).streams
    assert not stream.failed and (stream.events, stream.rows, stream.inserted) == (4, 4, 4)


def test_an_unreachable_api_stops_the_whole_run(acme: Setup) -> None:
    import socket

    # A port bound but never listened on refuses connections, and stays ours while the run tries it.
    with socket.socket() as probe, pytest.raises(ApiError) as raised:
        probe.bind(("127.0.0.1", 0))
        acme.api.url = f"http://127.0.0.1:{probe.getsockname()[1]}"
        acme.run({"items": "incremental", "unsorted": "incremental"})
    assert raised.value.status is None and raised.value.message.startswith("Acme unreachable on GET /items")
    assert [c[:2] for c in acme.spy.calls] == [("begin", "items"), ("abort", "items")]



def test_a_nested_cursor_field_names_the_flattened_column(acme: Setup) -> None:
    acme.api.routes["/nested"] = page({"type": "n", "id": "n1", "attributes": {"meta": {"updated": day(1)}}})
    acme.run({"nested": "incremental"})
    acme.api.routes["/nested"] = page({"type": "n", "id": "n1", "attributes": {"meta": {"updated": day(2)}}})
    (stream,) = acme.run({"nested": "incremental"}).streams
    assert acme.spy.of("begin", "nested") == [(False, ("id",), "meta_updated")]
    assert (stream.inserted, stream.updated) == (0, 1) and acme.state("nested")["cursor"] == {"": day(2)}
    # The cursor names the column the record's meta.updated flattens to, not a column of its own.
    assert [c for c in acme.table("nested")[0] if c.startswith("meta")] == ["meta_updated"]


def test_a_partition_with_a_cursor_of_its_own_saves_that_cursor(acme: Setup) -> None:
    acme.api.routes["/dual"] = page(item("d1", day(5), created=day(1)), item("d2", day(3), created=day(2)))
    acme.run({"dual": "incremental"})
    assert acme.state("dual")["cursor"] == {"by=created": day(2), "by=updated": day(5)}


def test_records_without_a_cursor_value_leave_the_cursor_unsaved(acme: Setup) -> None:
    acme.api.routes["/items"] = page({"type": "item", "id": "a", "attributes": {"updated": None}}, {"type": "item", "id": "b", "attributes": {}})
    (stream,) = acme.run({"items": "incremental"}).streams
    assert stream.rows == 2 and acme.state("items")["cursor"] == {}
    acme.api.routes["/items"] = page({"type": "item", "id": "c", "attributes": {}}, item("d", day(2)), {"type": "item", "id": "e", "attributes": {}})
    acme.run({"items": "incremental"})
    assert acme.state("items")["cursor"] == {"": day(2)}


def test_a_stream_s_record_filter_skips_without_deleting(acme: Setup) -> None:
    acme.api.routes["/groups"] = page(item("g1", live=True), item("g2", live=False), item("g3", live=True))
    (stream,) = acme.run({"groups": "full_refresh"}).streams
    assert (stream.events, stream.rows, stream.rejected) == (3, 2, 0)
    assert [(ids, deletes) for ids, _, deletes in acme.spy.of("write", "groups")] == [(["g1", "g3"], None)]


def test_a_child_answer_not_declared_as_parent_gone_fails_the_stream(acme: Setup) -> None:
    acme.api.routes["/groups"] = page(item("g1", live=True), item("g2", live=True))
    acme.api.routes["/groups/g1/members"] = (400, {"errors": [{"detail": "Bad."}]})
    acme.api.routes["/groups/g2/members"] = page(item("m1"))
    (stream,) = acme.run({"members": "full_refresh"}).streams
    assert stream.failed and stream.error.status == 400 and stream.warnings == []


def test_rows_carry_utc_load_and_receive_times_whatever_the_machine_zone(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(1)))
    zone = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"  # nine hours from UTC: a naive local time would land nine hours off
    time.tzset()
    try:
        before = datetime.now(timezone.utc)
        acme.run({"items": "incremental"})
        after = datetime.now(timezone.utc)
    finally:
        if zone is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = zone
        time.tzset()
    (row,) = acme.table("items", "received_at, uuid_ts")
    for moment in (row["received_at"], row["uuid_ts"]):
        assert before - timedelta(seconds=2) <= moment <= after + timedelta(seconds=2)


def test_column_names_given_in_one_run_hold_in_the_next(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(1), a_b="flat"))
    acme.run({"items": "incremental"})
    acme.api.routes["/items"] = page(item("i2", day(2), a={"b": "nested"}))
    (stream,) = acme.run({"items": "incremental"}).streams
    assert stream.columns_added == ["a_b_2"] and stream.table == "kl_acme_items"
    assert acme.table("items", "id, a_b, a_b_2") == [{"id": "i1", "a_b": "flat", "a_b_2": None}, {"id": "i2", "a_b": None, "a_b_2": "nested"}]


def test_a_full_refresh_saves_the_cursor_of_what_it_read_not_the_one_before(acme: Setup) -> None:
    acme.api.routes["/items"] = page(item("i1", day(9)))
    acme.run({"items": "incremental"})
    acme.api.routes["/items"] = page(item("i1", day(3)))  # the record's cursor went back (restored from a backup)
    acme.run({"items": "full_refresh"})
    assert acme.state("items")["cursor"] == {"": day(3)}
