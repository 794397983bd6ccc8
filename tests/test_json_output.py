"""--log-format json for check, discover, plan and sql: what an orchestrator reads, one JSON object a line
(ts, event, fields) on stdout, the same facts as the text, errors as JSON on stderr."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from engine.cli import main
from klaviyo_sim import Simulator
from tests.klx_testing import ROOT, SIM_NOW, default_modes, write_config

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(scope="module")
def sim():
    with Simulator(seed=11, scale=0.03, now=SIM_NOW) as simulator:
        yield simulator


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` as a JSON object with a timestamp and an event; fails on any line that is not."""
    objects = [json.loads(line) for line in text.splitlines()]
    assert objects and all(TS.fullmatch(o["ts"]) and isinstance(o["event"], str) for o in objects), text
    return objects


def test_check_with_log_format_json_prints_each_check_as_the_text_says_it(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    config = write_config(tmp_path, {"metrics": "full_refresh", "lists": "incremental"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["check", str(config)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert main(["check", str(config), "--log-format", "json"]) == 0
    checks = json_lines(capsys.readouterr().out)
    assert [c["event"] for c in checks] == ["check"] * len(text)
    assert [f"{'ok  ' if c['ok'] else 'FAIL'} {c['check']:<24} {c['message']}" for c in checks] == text
    assert [c["check"] for c in checks] == ["config and spec", "API key", "scope metrics", "scope lists", "destination", "lock"]


def test_check_with_log_format_json_marks_a_refused_key_not_ok_and_exits_3(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    config = write_config(tmp_path, {"lists": "incremental"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_wrong_key_000000000000000000")
    assert main(["--log-format", "json", "check", str(config)]) == 3
    printed = capsys.readouterr()
    key = {c["check"]: c for c in json_lines(printed.out)}["API key"]
    assert key["ok"] is False and key["message"].startswith("Klaviyo 401 on GET /api/lists")
    assert "pk_wrong_key" not in printed.out + printed.err


def test_check_with_log_format_json_stops_at_a_bad_config_with_one_object_and_exit_2(tmp_path: Path, capsys) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("source:\n  api_key: x\n  start_date: 2024-01-01\ndestination:\n  path: x.duckdb\nresources:\n  profiles: incremantal\n")
    assert main(["check", str(config), "--log-format", "json"]) == 2
    printed = capsys.readouterr()
    [failed] = json_lines(printed.out)
    assert (failed["event"], failed["check"], failed["ok"]) == ("check", "config and spec", False)
    assert failed["message"] == f"{config}:7: resources.profiles: 'incremantal' is not one of full_refresh, incremental"
    assert printed.err == ""


def test_discover_with_log_format_json_prints_an_object_per_resource(capsys) -> None:
    assert main(["discover", "--log-format", "json"]) == 0
    resources = {r["resource"]: r for r in json_lines(capsys.readouterr().out)}
    assert sorted(resources) == sorted(default_modes())
    assert {r["event"] for r in resources.values()} == {"resource"}
    metrics = resources["metrics"]
    del metrics["ts"]
    assert metrics == {
        "event": "resource", "resource": "metrics", "sync_modes": ["full_refresh"], "primary_key": ["id"], "cursor": None,
        "endpoint": "/api/metrics", "parent": None, "rate_limit": {"tier": "M", "burst_per_second": 10, "steady_per_minute": 150},
        "buckets": [], "scopes": ["metrics:read"],
    }
    children = resources["segments_profiles"]
    assert (children["parent"], children["buckets"], children["scopes"]) == ("segments", ["predictive_analytics"], ["profiles:read", "segments:read"])


def test_discover_columns_with_log_format_json_prints_each_tables_columns(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    config = write_config(tmp_path, {"metrics": "full_refresh", "lists": "incremental"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["run", str(config), "--streams", "metrics"]) == 0
    capsys.readouterr()
    assert main(["discover", str(config), "--columns", "--log-format", "json"]) == 0
    tables = {o["table"]: o for o in json_lines(capsys.readouterr().out) if o["event"] == "columns"}
    assert tables["kl_rudder_lists"]["loaded"] is False and tables["kl_rudder_lists"]["columns"] == []
    metrics = tables["kl_rudder_metrics"]
    assert metrics["resource"] == "metrics" and metrics["loaded"] is True
    assert {"name": "id", "type": "TEXT"} in metrics["columns"]


def test_plan_with_log_format_json_prints_each_estimate_the_total_and_the_warnings(sim: Simulator, tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, {"campaigns": "incremental", "metrics": "full_refresh"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    assert main(["plan", str(config), "--log-format", "json"]) == 0
    campaigns, metrics, total, *warnings = json_lines(capsys.readouterr().out)
    assert (campaigns["event"], campaigns["stream"], campaigns["mode"]) == ("estimate", "campaigns", "incremental")
    assert (campaigns["reads_from"], campaigns["records"], campaigns["requests"], campaigns["rate_limit"]) == ("2024-01-01T00:00:00+00:00", None, 6, "M")
    assert campaigns["basis"] == "volume unknown (nothing loaded yet): one page per request sequence counted (6 partitions)"
    assert (metrics["stream"], metrics["reads_from"], metrics["requests"]) == ("metrics", None, 1)
    assert (total["event"], total["requests"]) == ("total", 7)
    assert [(w["event"], w["streams"]) for w in warnings] == [("warning", ["campaigns"])]
    assert warnings[0]["message"].startswith("large backfill: campaigns read ")


def test_sql_with_log_format_json_prints_every_statement_whole_on_its_own_line(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, {"lists": "incremental", "metrics": "full_refresh"}, base_url=None, database=tmp_path / "x.duckdb")
    assert main(["sql", str(config), "--dialect", "postgres"]) == 0
    text = capsys.readouterr().out
    assert main(["sql", str(config), "--dialect", "postgres", "--log-format", "json"]) == 0
    statements = json_lines(capsys.readouterr().out)
    assert {(s["event"], s["dialect"]) for s in statements} == {("statement", "postgres")}
    assert len(statements) == text.count(";\n")  # as many as the text prints, one a line
    sections = list(dict.fromkeys(s["section"] for s in statements))
    assert sections == [line.removeprefix("-- ") for line in text.splitlines() if line.startswith("-- ") and not line.startswith("-- klx sql")
                        and not line.startswith("-- Values") and not line.startswith("-- Columns")]
    for s in statements:  # whole: each parses back
        assert sqlglot.parse_one(s["sql"], read="postgres") is not None, s["sql"]
    assert any(s["sql"].startswith('MERGE INTO "public"."kl_rudder_lists"') for s in statements)


@pytest.mark.parametrize("command", [["discover", "{config}", "--columns"], ["plan", "{config}"], ["sql", "{config}"]])
def test_with_log_format_json_a_bad_config_is_one_json_error_on_stderr(tmp_path: Path, capsys, command: list[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("source:\n  api_key: x\n  start_date: 2024-01-01\ndestination:\n  path: x.duckdb\nresources:\n  profiles: incremantal\n")
    assert main(["--log-format", "json", *(str(config) if a == "{config}" else a for a in command)]) == 2
    printed = capsys.readouterr()
    [error] = json_lines(printed.err)
    assert (error["event"], error["exit_code"], error["where"]) == ("error", 2, f"{config}:7")
    assert error["message"] == "resources.profiles: 'incremantal' is not one of full_refresh, incremental"
    assert printed.out == ""


def test_the_readme_says_which_commands_print_json_and_which_text() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    said = readme[readme.index("With `--log-format json` klx prints"):]
    said = said[: said.index(" print text.")]
    as_text = said[said.rindex(". ") + 2:]
    as_json = said[: said.rindex(". ")]
    for command in ("check", "discover", "plan", "sql", "runs", "state show"):
        assert f"`{command}`" in as_json and f"`{command}`" not in as_text, command


@pytest.fixture
def synced(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> tuple[Path, dict[str, Any]]:
    """A config whose metrics (full refresh) and lists (incremental) one run loaded, and that run's JSON summary."""
    config = write_config(tmp_path, {"metrics": "full_refresh", "lists": "incremental"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["run", str(config), "--log-format", "json"]) == 0
    summary = json_lines(capsys.readouterr().out)[-1]
    return config, summary


def test_a_runs_summary_with_log_format_json_carries_ts_and_event(synced: tuple[Path, dict[str, Any]]) -> None:
    # It printed {"event": "summary", ...} without the ts every other line of the run has (json_lines checks both).
    _, summary = synced
    assert summary["event"] == "summary" and summary["status"] == "succeeded"


def test_runs_with_log_format_json_prints_each_run_as_a_run_event_with_ts(synced: tuple[Path, dict[str, Any]], capsys) -> None:
    # It printed each run's bare report: no ts, no event, unlike every other JSON line klx prints.
    config, summary = synced
    assert main(["runs", str(config), "--log-format", "json"]) == 0
    [listed] = json_lines(capsys.readouterr().out)
    assert (listed["event"], listed["run_id"], listed["status"]) == ("run", summary["run_id"], "succeeded")
    assert [(s["stream"], s["status"], s["rows"]) for s in listed["streams"]] == [(s["stream"], s["status"], s["rows"]) for s in summary["streams"]]


def test_state_show_with_log_format_json_prints_one_state_event_with_each_streams_cursors(synced: tuple[Path, dict[str, Any]], capsys) -> None:
    # It printed {"metrics": ..., "lists": ...}: no ts, no event, and stream names where they would go.
    config, _ = synced
    assert main(["state", "show", str(config), "--log-format", "json"]) == 0
    [shown] = json_lines(capsys.readouterr().out)
    assert sorted(shown) == ["event", "streams", "ts"] and shown["event"] == "state"
    assert shown["streams"]["metrics"]["cursor"] == {} and list(shown["streams"]["lists"]["cursor"]) == [""]
