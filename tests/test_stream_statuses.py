"""How each stream of a run ended, told the same way everywhere: done, failed (on its own error), interrupted
(cut short by the run stopping) or not_started (the run stopped before it). In klx_runs, `klx runs`, --report,
the summary and the json progress events; rows an older klx wrote stay readable."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import engine.run
from engine.cli import main
from engine.destinations.duckdb import DuckDBDestination
from engine.destinations.table_load import SqlLoad
from engine.errors import WarehouseError
from engine.history import records_from_rows
STREAM_STATUSES = ("done", "failed", "interrupted", "not_started")
from klaviyo_sim import Simulator
from tests.hostile_api import HostileApi, send, wait_for
from tests.klx_testing import SIM_NOW, rows, write_config

GONE = "INSERT on table kl_rudder_metrics__klx_shadow failed: the connection is closed"


@pytest.fixture(scope="module")
def sim():
    with Simulator(seed=3, scale=0.02, now=SIM_NOW) as simulator:
        yield simulator


def stopped_by_a_dead_warehouse(sim: Simulator, tmp_path: Path, monkeypatch, *argv: str) -> tuple[int, Path, Path]:
    """`klx run` of metrics, lists and segments, two streams at a time: metrics (started first: its rate tier is the
    scarcest) loses the warehouse while lists hangs on its first request, and segments waits its turn. The exit code,
    the config and the --report file."""
    written, flushed = SqlLoad.write, engine.run.StreamSync._flush

    def flush(self) -> None:  # on metrics' own thread: the one writer stays free for lists to begin its load
        if self.stream.name == "metrics":
            wait_for(lambda: any(urlsplit(hit.path).path == "/api/lists" for hit in api.hits), 30)  # lists is running now
        flushed(self)

    def write(self, batch, columns, state, deletes=None):
        if self._stream != "metrics":
            return written(self, batch, columns, state, deletes)
        raise WarehouseError(GONE)

    def respond(handler, hit) -> None:
        parts = urlsplit(hit.path)
        if parts.path == "/api/lists":
            api.hang()
            return
        reply = sim.handle_api("GET", parts.path, parts.query, hit.headers, api.url)
        send(handler, reply.status, reply.body, dict(reply.headers))

    monkeypatch.setattr(engine.run, "MAX_STREAMS", 2)
    monkeypatch.setattr(SqlLoad, "write", write)
    monkeypatch.setattr(engine.run.StreamSync, "_flush", flush)
    monkeypatch.setattr(DuckDBDestination, "alive", lambda self: False)  # the warehouse no longer answers: the run stops
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    report = tmp_path / "run.json"
    with HostileApi(respond) as api:
        config = write_config(tmp_path, {"metrics": "full_refresh", "lists": "incremental", "segments": "incremental"},
                              base_url=api.url, database=tmp_path / "x.duckdb")
        code = main(["run", str(config), "--report", str(report), *argv])
    monkeypatch.undo()  # `klx runs` reads the real warehouse
    return code, config, report


EXPECTED = [("metrics", "failed"), ("lists", "interrupted"), ("segments", "not_started")]


def test_a_run_a_dead_warehouse_stops_keeps_each_stream_as_failed_interrupted_or_not_started(
    sim: Simulator, tmp_path: Path, monkeypatch, capsys
) -> None:
    code, config, report = stopped_by_a_dead_warehouse(sim, tmp_path, monkeypatch)
    assert code == 4
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in out[1:4]] == [[stream, mode, status] for (stream, status), mode in
                                                       zip(EXPECTED, ("full_refresh", "incremental", "incremental"))]
    assert out[-1].endswith("; 1 stream failed, 1 stream interrupted, 1 stream not started")
    kept = rows(tmp_path / "x.duckdb", "select stream, status, run_status, error from kl_klx_runs")
    assert sorted((r["stream"], r["status"], r["run_status"]) for r in kept) == sorted((s, status, "failed") for s, status in EXPECTED)
    errors = {r["stream"]: r["error"] for r in kept}
    assert errors["metrics"] == GONE  # its own error
    assert errors["lists"].endswith("stopped: klx is shutting down") and errors["segments"] is None
    written = json.loads(report.read_text())
    assert [(s["stream"], s["status"]) for s in written["streams"]] == EXPECTED

    assert main(["runs", str(config)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[1].split()[4] == "failed"
    assert listed[2:] == [
        f"  metrics failed: {GONE}",
        f"  lists interrupted: {errors['lists']}",
        "  segments not_started: the run stopped before it started",
    ]
    assert main(["runs", str(config), "--log-format", "json"]) == 0
    (run,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(s["stream"], s["status"]) for s in run["streams"]] == EXPECTED


def test_with_log_format_json_every_stream_ends_in_one_event_naming_how_it_ended(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    code, _, report = stopped_by_a_dead_warehouse(sim, tmp_path, monkeypatch, "--log-format", "json")
    assert code == 4
    printed = capsys.readouterr()
    lines = [json.loads(line) for line in printed.out.splitlines()]
    ends = {line["stream"]: (line["event"], line["state"]) for line in lines if line["event"] not in ("started", "running", "summary")}
    assert ends == {stream: (status, status) for stream, status in EXPECTED}
    assert [(s["stream"], s["status"]) for s in lines[-1]["streams"]] == EXPECTED  # the summary, as --report
    assert lines[-1]["streams"] == json.loads(report.read_text())["streams"]
    assert json.loads(printed.err.splitlines()[-1])["exit_code"] == 4


def test_rows_an_older_klx_wrote_read_back_with_todays_statuses() -> None:
    # klx before these statuses kept a stream the run never started as queued.
    old = {"run_id": "r1", "started_at": "2026-11-30 09:00:00+00", "ended_at": "2026-11-30 09:00:05+00", "run_status": "failed",
           "mode": "incremental", "records": 0, "rows": 0, "rejected": None, "inserted": 0, "updated": 0, "columns_added": None,
           "pages": 0, "requests": 0, "retries": 0, "http_429": 0, "waited_seconds": 0.0, "seconds": 0.0, "error": None}
    (run,) = records_from_rows([{**old, "stream": "metrics", "status": "failed", "error": "Klaviyo 401"}, {**old, "stream": "lists", "status": "queued"}])
    assert [(s.stream, s.status) for s in run.streams] == [("metrics", "failed"), ("lists", "not_started")]
    assert {s.status for s in run.streams} <= set(STREAM_STATUSES)
    assert run.started_at == datetime(2026, 11, 30, 9, tzinfo=timezone.utc)


def test_the_error_that_stopped_the_run_names_its_stream_on_the_last_line(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    # PostgreSQL walkthrough: with klx's session terminated, the run's last line was the failed statement alone
    # ("error: DROP TABLE on table … failed: terminating connection …"), naming no stream; the stream whose load
    # failed showed only in the table above it.
    code, _, report = stopped_by_a_dead_warehouse(sim, tmp_path, monkeypatch)
    assert code == 4
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors[-1] == f"error: stream metrics: {GONE}"
    written = json.loads(report.read_text())
    assert [s["error"] for s in written["streams"] if s["stream"] == "metrics"] == [GONE]  # the stream's own text as it was
