"""Live progress, the final summary, -v and --log-format json, run history and --report: against the simulator."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.cli import main
from engine.commands.sync import sync_once
from engine.config import Config
from engine.progress import JsonView, LiveView, LogView, Progress, choose_view
from klaviyo_sim import Simulator
from tests.klx_testing import ROOT, SIM_NOW, rows, sync, write_config


class FakeTime:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def fed(view=None) -> tuple[Progress, FakeTime]:
    clock = FakeTime()
    progress = Progress(view, clock=clock, verbose=True)
    progress.planned([("lists", "incremental"), ("events", "incremental")])
    progress.started("lists")
    progress.throttled("lists", 0.5)
    progress.request("lists", "/api/lists?page[size]=10", 429, 0.01)
    progress.retry("lists", "HTTP 429", 2.0)
    progress.request("lists", "/api/lists?page[size]=10", 200, 0.02)
    progress.page("lists", 10)
    clock.t += 4.0
    return progress, clock


def test_progress_counts_records_pages_requests_retries_429s_and_rate_limit_waits() -> None:
    progress, _ = fed()
    lists, events = progress.snapshot()
    assert (lists.state, lists.records, lists.pages, lists.requests, lists.retries, lists.http_429, lists.waited) == ("running", 10, 1, 2, 1, 1, 2.5)
    assert lists.rate(progress.clock()) == 2.5
    assert (events.state, events.records) == ("queued", 0)


def test_a_request_counts_for_the_stream_it_names_never_for_another_that_runs() -> None:
    # A child reading its parent's pages names itself (run.StreamSync._get), so no request needs moving: one
    # naming a stream that is not running (a fetch ending after its stream stopped) stays with that stream.
    progress = Progress(clock=FakeTime())
    progress.planned([("lists", "incremental"), ("segments", "incremental"), ("segments_profiles", "full_refresh")])
    progress.started("segments_profiles")
    progress.request("segments_profiles", "/api/segments", 200, 0.1)
    progress.request("lists", "/api/lists", None, 0.1)
    assert [(s.stream, s.requests) for s in progress.snapshot()] == [("lists", 1), ("segments", 0), ("segments_profiles", 1)]


def test_off_a_terminal_each_running_stream_is_logged_with_a_timestamp() -> None:
    out = io.StringIO()
    view = LogView(out, wall=lambda: datetime(2026, 11, 30, 9, 0, 10, tzinfo=timezone.utc))
    progress, _ = fed(view)
    view.heartbeat(progress)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1  # the heartbeat's line for the one running stream; the queued one is silent
    assert lines[-1] == "2026-11-30T09:00:10Z running   lists                       10 records      1 pages        2 rec/s waited    2.5s retries 1"


def test_json_log_lines_are_objects_an_orchestrator_can_read() -> None:
    out = io.StringIO()
    progress, _ = fed(JsonView(out, wall=lambda: datetime(2026, 11, 30, 9, 0, 10, tzinfo=timezone.utc)))
    progress.view.heartbeat(progress)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["started", "request", "request", "running"]
    assert lines[1] == {"ts": "2026-11-30T09:00:10Z", "event": "request", "stream": "lists", "url": "/api/lists?page[size]=10", "status": 429, "seconds": 0.01}
    assert {k: lines[-1][k] for k in ("stream", "state", "records", "pages", "requests", "retries", "http_429", "waited_seconds")} == {
        "stream": "lists", "state": "running", "records": 10, "pages": 1, "requests": 2, "retries": 1, "http_429": 1, "waited_seconds": 2.5,
    }


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_table_is_redrawn_in_place_and_erased_at_the_end() -> None:
    out = Terminal()
    view = choose_view("text", out, io.StringIO())
    assert isinstance(view, LiveView)
    progress, _ = fed(view)
    view.draw(progress)  # what the redraw thread does twice a second
    text = out.getvalue()
    assert "\x1b[3F" in text  # moved up over the 3-line table to redraw it
    last = text.rsplit("\x1b[3F", 1)[1]
    assert "lists                running             10       1        2     2.5s       1" in last
    assert "events               queued               0" in last
    view.stop()
    assert out.getvalue().endswith("\x1b[3F\x1b[0J")


def test_verbose_or_piped_output_gets_log_lines_not_a_live_table() -> None:
    assert isinstance(choose_view("text", Terminal(), io.StringIO(), verbose=True), LogView)
    assert isinstance(choose_view("text", io.StringIO(), io.StringIO()), LogView)
    assert isinstance(choose_view("json", Terminal(), io.StringIO()), JsonView)


@pytest.fixture(scope="module")
def sim():
    with Simulator(seed=7, scale=0.03, now=SIM_NOW) as simulator:
        yield simulator


def test_summary_tells_inserted_from_updated_rows_and_lists_added_columns(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    database = tmp_path / "x.duckdb"
    config = write_config(tmp_path, {"lists": "incremental"}, base_url=sim.url, database=database)
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["run", str(config)]) == 0
    first = capsys.readouterr().out.splitlines()
    total = len(sim.truth("lists", "2024-01-01"))
    assert first[1].split()[:7] == ["lists", "incremental", "done", str(total), str(total), str(total), "0"]
    changed = sim.mutate("lists", update=2, create=1)
    with duckdb_connection(database) as con:  # a column the next batch brings back is "added"
        con.execute('alter table kl_rudder_lists drop column "opt_in_process"')
    assert main(["run", str(config), "--full-refresh"]) == 0
    second = capsys.readouterr().out.splitlines()
    assert second[1].split()[:7] == ["lists", "full_refresh", "done", str(total + 1), str(total + 1), str(total + 1), "0"]
    assert second[-1] == "  lists: columns added: opt_in_process"
    sim.mutate("lists", update=3)
    assert main(["run", str(config)]) == 0
    third = capsys.readouterr().out.splitlines()
    stream = third[1].split()
    assert stream[:3] == ["lists", "incremental", "done"] and (stream[5], stream[6]) == ("0", "3")
    assert changed["updated"] and changed["created"]


def test_a_child_streams_reads_of_its_parent_count_for_it_whatever_runs_beside_it(sim: Simulator, tmp_path: Path) -> None:
    # Read under the parent's name, they counted for the running stream only when it ran alone: beside another,
    # the summary, --report and klx_runs got a row "segments  queued" in a run that never selected segments.
    heard: list[tuple[str, str]] = []

    class Heard(Progress):
        def request(self, stream: str, url: str, status: int | None, seconds: float) -> None:
            heard.append((stream, url.split("?")[0]))
            super().request(stream, url, status, seconds)

    progress = Heard()
    config = write_config(tmp_path, {"lists": "incremental", "segments_profiles": "full_refresh"}, base_url=sim.url,
                          database=tmp_path / "x.duckdb")
    assert not sync(config, sim.api_key, events=progress).failed
    assert ("segments_profiles", "/api/segments") in heard
    assert {stream for stream, path in heard if path == "/api/segments"} == {"segments_profiles"}
    assert [s.stream for s in progress.snapshot()] == ["lists", "segments_profiles"]


def duckdb_connection(path: Path):
    import duckdb

    return duckdb.connect(str(path))


def test_verbose_after_the_subcommand_logs_every_request(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    env = {**os.environ, "KLAVIYO_API_KEY": sim.api_key}
    done = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(config), "-v"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    requests = [line for line in done.stderr.splitlines() if "GET /api/metrics" in line]
    assert len(requests) == 1 and "(stream metrics): 200, " in requests[0]
    assert sim.api_key not in done.stderr + done.stdout


def test_json_log_format_after_the_subcommand_prints_only_json_ending_with_the_summary(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    config = write_config(tmp_path, {"metrics": "full_refresh", "lists": "incremental"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["run", str(config), "--log-format", "json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    events = [(line["event"], line.get("stream")) for line in lines[:-1]]
    # Streams run side by side: each one's lines are in order, the two streams' lines interleave.
    assert [e for e in events if e[1] == "metrics"] == [("started", "metrics"), ("done", "metrics")]
    assert [e for e in events if e[1] == "lists"] == [("started", "lists"), ("done", "lists")]
    assert len(events) == 4 and events[0] == ("started", "metrics")
    summary = lines[-1]
    assert summary["event"] == "summary" and summary["status"] == "succeeded"
    assert [(s["stream"], s["status"], s["records"]) for s in summary["streams"]] == [
        ("metrics", "done", len(sim.truth("metrics"))), ("lists", "done", len(sim.truth("lists", "2024-01-01"))),
    ]


def test_every_run_is_kept_in_klx_runs_and_report_writes_the_same_as_json(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    database = tmp_path / "x.duckdb"
    config = write_config(tmp_path, {"metrics": "full_refresh", "lists": "incremental"}, base_url=sim.url, database=database)
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    report = tmp_path / "run.json"
    assert main(["run", str(config), "--report", str(report)]) == 0
    written = json.loads(report.read_text())
    kept = rows(database, "select * from kl_klx_runs order by stream")
    assert {r["run_id"] for r in kept} == {written["run_id"]}
    assert [(r["stream"], r["status"], r["records"], r["rows"], r["pages"], r["requests"], r["retries"], r["http_429"], r["error"]) for r in kept] == sorted(
        (s["stream"], s["status"], s["records"], s["rows"], s["pages"], s["requests"], s["retries"], s["http_429"], s["error"]) for s in written["streams"]
    )
    assert all(r["run_status"] == "succeeded" for r in kept)
    # The rows carry the same run id, so a run's rows can be found from its history.
    loaded = rows(database, "select distinct context_sources_job_run_id as id from kl_rudder_metrics")
    assert loaded == [{"id": written["run_id"]}]


def test_retries_are_counted_per_stream(sim: Simulator, tmp_path: Path) -> None:
    config = Config.from_yaml(write_config(tmp_path, {"metrics": "full_refresh", "lists": "incremental"}, base_url=sim.url, database=tmp_path / "x.duckdb"),
                              env={"KLAVIYO_API_KEY": sim.api_key})
    sim.faults.queue(["503", "reset", "truncated"])
    report = tmp_path / "run.json"
    sync_once(config, report=report, out=io.StringIO(), err=io.StringIO(), sleep=lambda seconds: None)
    streams = {s["stream"]: s for s in json.loads(report.read_text())["streams"]}
    assert (streams["metrics"]["retries"], streams["metrics"]["requests"], streams["metrics"]["http_429"]) == (3, 4, 0)
    assert (streams["lists"]["retries"], streams["lists"]["requests"]) == (0, streams["lists"]["pages"])


def test_429s_and_the_wait_they_cost_are_counted(sim: Simulator, tmp_path: Path) -> None:
    from urllib.parse import urlsplit

    from tests.hostile_api import HostileApi, send

    answered: list[int] = []

    def respond(handler, hit) -> None:  # the first two GETs are refused with 429 and Retry-After: 2, then the simulator answers
        if len(answered) < 2:
            answered.append(429)
            send(handler, 429, {"errors": [{"status": 429, "detail": "Request was throttled."}]}, {"Retry-After": "2"})
            return
        parts = urlsplit(hit.path)
        reply = sim.handle_api("GET", parts.path, parts.query, hit.headers, api.url)
        send(handler, reply.status, reply.body, dict(reply.headers))

    with HostileApi(respond) as api:
        config = Config.from_yaml(write_config(tmp_path, {"metrics": "full_refresh"}, base_url=api.url, database=tmp_path / "x.duckdb"),
                                  env={"KLAVIYO_API_KEY": sim.api_key})
        report = tmp_path / "run.json"
        sync_once(config, report=report, out=io.StringIO(), err=io.StringIO(), sleep=lambda seconds: None)
    (metrics,) = json.loads(report.read_text())["streams"]
    assert (metrics["http_429"], metrics["retries"], metrics["requests"]) == (2, 2, 3)
    assert metrics["waited_seconds"] >= 4.0  # two Retry-After: 2, counted as waited even though the test does not sleep


def test_a_failed_run_still_prints_its_summary_and_is_kept_as_failed(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    database = tmp_path / "x.duckdb"
    config = write_config(tmp_path, {"metrics": "full_refresh", "lists": "incremental"}, base_url=sim.url, database=database)
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_wrong_key_000000000000000000")
    assert main(["run", str(config)]) == 3
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[1].split()[:3] == ["metrics", "full_refresh", "failed"]
    assert lines[2].split()[:3] == ["lists", "incremental", "not_started"]
    assert " failed: " in lines[4]
    kept = rows(database, "select stream, status, run_status, error from kl_klx_runs order by stream")
    assert [(r["stream"], r["status"], r["run_status"]) for r in kept] == [("lists", "not_started", "failed"), ("metrics", "failed", "failed")]
    assert kept[1]["error"].startswith("Klaviyo 401 on GET /api/metrics")


def test_runs_lists_recent_runs_newest_first_with_failed_streams_errors(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    database = tmp_path / "x.duckdb"
    config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=sim.url, database=database)
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["runs", str(config)]) == 0
    assert capsys.readouterr().out == f"no runs recorded yet in kl_klx_runs; `klx run {config}` records one\n"
    assert main(["run", str(config)]) == 0
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_wrong_key_000000000000000000")
    assert main(["run", str(config)]) == 3
    capsys.readouterr()
    monkeypatch.delenv("KLAVIYO_API_KEY")  # listing runs needs no key
    assert main(["runs", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["run_id", "started", "(UTC)", "seconds", "status", "streams", "events", "rows", "requests", "429s"]
    assert [line.split()[4] for line in out[1:] if not line.startswith("  ")] == ["failed", "succeeded"]
    assert out[2].startswith("  metrics failed: Klaviyo 401 on GET /api/metrics")
    assert main(["runs", str(config), "--limit", "1", "--log-format", "json"]) == 0
    (only,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert only["status"] == "failed" and only["streams"][0]["stream"] == "metrics"


@pytest.mark.parametrize(("limit", "why"), [("-1", "-1 is not 1 or more"), ("0", "0 is not 1 or more"), ("ten", "'ten' is not a whole number")])
def test_runs_refuses_a_limit_below_one_with_exit_2_naming_the_option(sim: Simulator, tmp_path: Path, monkeypatch, capsys,
                                                                       limit: str, why: str) -> None:
    config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_wrong_key_000000000000000000")
    assert main(["run", str(config)]) == 3  # a run recorded: the old klx then sent LIMIT -1 to DuckDB (exit 4)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["runs", str(config), "--limit", limit])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"klx runs: error: argument --limit: {why}"


def test_streams_running_side_by_side_keep_their_own_counts_and_are_interrupted_when_the_run_stops() -> None:
    progress = Progress(clock=FakeTime())
    progress.planned([("lists", "incremental"), ("metrics", "full_refresh"), ("events", "incremental")])
    progress.started("lists")
    progress.started("metrics")
    progress.request("lists", "/api/lists", 200, 0.1)
    progress.request("metrics", "/api/metrics", 200, 0.1)
    progress.request("metrics", "/api/metrics", 429, 0.1)
    progress.stopped(KeyboardInterrupt("interrupted"))
    assert [(s.stream, s.state, s.requests, s.http_429) for s in progress.snapshot()] == [
        ("lists", "interrupted", 1, 0), ("metrics", "interrupted", 2, 1), ("events", "not_started", 0, 0),
    ]
