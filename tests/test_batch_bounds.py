"""Batches are bounded in response bytes as well as rows: wide records (profiles) cut a batch long before api.batch_rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import run as run_module
from engine.destinations.duckdb import DuckDBDestination
from engine.destinations.table_load import SqlLoad
from engine.http import HttpClient
from klaviyo_sim import Simulator
from tests.klx_testing import SIM_NOW, rows, sync, write_config
from tests.test_mid_stream_commits import spec_with_batch

BOUND = 40_000  # bytes of responses per batch: about 15 profiles


def cuts(pages: list[tuple[int, int]], bound: int) -> list[int]:
    """The batch sizes the byte rule gives: each record carries its page's bytes / records; a batch ends once it holds `bound`."""
    batches, rows_in, held = [], 0, 0
    for size, count in pages:
        for _ in range(count):
            rows_in, held = rows_in + 1, held + size // count
            if held >= bound:
                batches.append(rows_in)
                rows_in, held = 0, 0
    return batches + ([rows_in] if rows_in else [])


@pytest.mark.parametrize("scale", [1, 3])
def test_a_batch_is_cut_once_its_rows_came_from_batch_bytes_of_responses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scale: int) -> None:
    pages: list[tuple[int, int]] = []  # (response bytes, records) of each page, in order
    batches: list[int] = []
    real_get, real_write = HttpClient.get, SqlLoad.write

    def get(self, url, params, **kw):
        page = real_get(self, url, params, **kw)
        pages.append((page.size, len(page.body["data"])))
        return page

    def write(self, batch, columns, state, deletes=None):
        batches.append(batch.num_rows)
        return real_write(self, batch, columns, state, deletes)

    monkeypatch.setattr(HttpClient, "get", get)
    monkeypatch.setattr(SqlLoad, "write", write)
    monkeypatch.setattr(run_module, "BATCH_BYTES", BOUND)
    monkeypatch.setattr(DuckDBDestination, "batch_scale", scale)  # a destination's batch_scale multiplies the bound
    database = tmp_path / "klx.duckdb"
    with Simulator(seed=1, scale=0.25, now=SIM_NOW) as sim:
        config = write_config(tmp_path, {"profiles": "full_refresh"}, base_url=sim.url, database=database)
        summary = sync(config, sim.api_key, now=SIM_NOW)
        total = len(sim.truth("profiles"))

    assert not summary.failed and len(pages) == 3 and pages[0][1] == 100
    assert batches == cuts(pages, BOUND * scale)
    assert 10 * scale < max(batches) < 100 * scale  # cut inside a page, far below api.batch_rows (5000)
    assert sum(batches) == total == rows(database, "select count(*) as n from kl_rudder_profiles")[0]["n"]


@pytest.mark.parametrize("scale", [1, 4])
def test_a_batch_holds_batch_rows_times_the_destinations_batch_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scale: int) -> None:
    batches: list[int] = []
    real_write = SqlLoad.write

    def write(self, batch, columns, state, deletes=None):
        batches.append(batch.num_rows)
        return real_write(self, batch, columns, state, deletes)

    monkeypatch.setattr(SqlLoad, "write", write)
    monkeypatch.setattr(DuckDBDestination, "batch_scale", scale)
    with Simulator(seed=1, scale=0.05, now=SIM_NOW) as sim:
        config = write_config(tmp_path, {"events": "full_refresh"}, base_url=sim.url, database=tmp_path / "klx.duckdb",
                              spec=spec_with_batch(tmp_path, 7))
        summary = sync(config, sim.api_key, now=SIM_NOW)
        total = len(sim.truth("events"))
    assert not summary.failed and total > 7 * 4 * 3
    assert batches == [7 * scale] * (total // (7 * scale)) + ([total % (7 * scale)] if total % (7 * scale) else [])


@pytest.mark.parametrize("stream", ["events", "profiles"])
def test_a_page_whose_records_are_all_kept_is_added_at_once_and_cut_where_one_by_one_cuts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: str
) -> None:
    # run._add_all (every record of the page kept) against run._add_each (the same records one by one): the
    # same batches, cut after the same records by either bound, the same state with each, the same table.
    from engine.records import RecordReader

    monkeypatch.setattr(run_module, "BATCH_BYTES", 20_000)  # about nine events, or seven profiles: both bounds cut
    written: dict[bool, list[tuple[int, object]]] = {}
    tables: dict[bool, list[dict]] = {}
    real_write, real_all_kept = SqlLoad.write, RecordReader.all_kept
    for at_once in (True, False):
        batches = written[at_once] = []
        kept_at_once: list[bool] = []

        def write(self, batch, columns, state, deletes=None):
            batches.append((batch.num_rows, state))
            return real_write(self, batch, columns, state, deletes)

        def all_kept(self, records, at_once=at_once):
            kept = real_all_kept(self, records) and at_once
            kept_at_once.append(kept)
            return kept

        monkeypatch.setattr(SqlLoad, "write", write)
        monkeypatch.setattr(RecordReader, "all_kept", all_kept)
        database = tmp_path / f"{at_once}.duckdb"
        with Simulator(seed=1, scale=0.1, now=SIM_NOW) as sim:
            config = write_config(tmp_path, {stream: "incremental"}, base_url=sim.url, database=database,
                                  spec=spec_with_batch(tmp_path, 9))
            summary = sync(config, sim.api_key, now=SIM_NOW)
        assert not summary.failed
        assert any(kept_at_once) if at_once else not any(kept_at_once)
        table = rows(database, f"select * exclude (received_at, uuid_ts, context_sources_job_run_id, context_sources_task_run_id) from kl_rudder_{stream} order by id")
        tables[at_once] = table
    sizes = [n for n, _ in written[True]]
    if stream == "events":  # cut by rows: nine events come from about 18 KB of responses
        assert set(sizes[:-1]) == {9} and sum(sizes) > 100
    else:  # cut by bytes, within pages of 100
        assert 5 <= min(sizes[:-1]) and max(sizes) < 9 and sum(sizes) == 100
    assert written[True] == written[False]  # each batch's rows and the state saved with it
    assert tables[True] == tables[False] and len(tables[True]) == sum(sizes)
