"""klx check, discover and state against the simulator: exact lines and exit codes."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from engine.destinations import _install_hint

from engine.cli import main
from engine.destinations.duckdb import DuckDBDestination
from engine.state import encode_state, mark_unresolved
from klaviyo_sim import Simulator
from tests.hostile_api import HostileApi, send
from tests.klx_testing import SIM_NOW, default_modes, READ_ONLY_WAYS, read_only_folder, rows, write_config
from tests.warehouses import pg_schema  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def sim():
    with Simulator(seed=11, scale=0.03, now=SIM_NOW) as simulator:
        yield simulator


def test_discover_lists_every_resource_of_the_bundled_spec_without_a_config(capsys) -> None:
    assert main(["discover"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["resource", "sync", "modes", "key", "cursor", "endpoint", "rate", "limit", "scopes"]
    by_name = {line.split()[0]: line for line in lines[1:]}
    assert sorted(by_name) == sorted(default_modes())
    assert by_name["metrics"].split() == ["metrics", "full_refresh", "id", "-", "/api/metrics", "M", "(10/s,", "150/m)", "metrics:read"]
    assert "/api/segments/{parent.id}/profiles (per segments)" in by_name["segments_profiles"]
    assert "+ predictive_analytics" in by_name["profiles"] and "profiles:read, segments:read" in by_name["segments_profiles"]


def test_discover_columns_lists_each_tables_columns_as_last_loaded(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    config = write_config(tmp_path, {"metrics": "full_refresh", "lists": "incremental"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["run", str(config), "--streams", "metrics"]) == 0
    capsys.readouterr()
    assert main(["discover", str(config), "--columns"]) == 0
    out = capsys.readouterr().out
    loaded = rows(tmp_path / "x.duckdb", "select column_name from information_schema.columns where table_name = 'kl_rudder_metrics' order by ordinal_position")
    assert f"kl_rudder_metrics ({len(loaded)} columns)" in out
    assert all(f"  {r['column_name']} " in out for r in loaded)
    assert "kl_rudder_lists: not loaded yet" in out


def test_discover_columns_without_a_config_is_one_error_line_and_no_table(capsys) -> None:
    assert main(["discover", "--columns"]) == 2
    printed = capsys.readouterr()
    assert printed.err == "error: --columns reads the tables a config loads into: pass the config, e.g. klx discover config.yaml --columns\n"
    assert printed.out == ""  # the resource table was printed before the refusal


def test_state_show_and_reset_move_only_the_chosen_streams_back_to_start_date(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    database = tmp_path / "x.duckdb"
    config = write_config(tmp_path, {"lists": "incremental", "segments": "incremental", "metrics": "full_refresh"}, base_url=sim.url, database=database)
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["state", "show", str(config)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "lists: no saved state; the next run reads from start_date 2024-01-01T00:00:00+00:00"
    assert main(["run", str(config)]) == 0
    capsys.readouterr()
    newest = max(r["updated"] for r in rows(database, "select updated from kl_rudder_lists"))
    assert main(["state", "show", str(config), "--streams", "lists,metrics"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("lists: ") and out[0].endswith(" column names kept; cursor per partition:")
    assert out[1] == f"  (whole stream): {newest.isoformat()}"
    assert out[2].startswith("metrics: no cursor (full refresh or nothing read yet); ")
    assert main(["state", "reset", str(config), "--streams", "lists"]) == 0
    assert capsys.readouterr().out == "lists: cursor reset; the next run reads from start_date 2024-01-01\n"
    assert main(["state", "show", str(config), "--streams", "lists,segments", "--log-format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)["streams"]
    assert shown["lists"]["cursor"] == {} and shown["segments"]["cursor"] != {}
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["run", str(config), "--streams", "lists", "--log-format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    (lists,) = summary["streams"]
    assert lists["records"] == len(sim.truth("lists", "2024-01-01"))  # read again from start_date
    assert (lists["inserted"], lists["updated"]) == (0, 0)  # same rows: nothing changed


def test_state_with_an_unknown_stream_exits_2(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, {"lists": "incremental"}, base_url=None, database=tmp_path / "x.duckdb")
    assert main(["state", "show", str(config), "--streams", "list"]) == 2
    assert capsys.readouterr().err.startswith("error: --streams: 'list' is not among the resources in ")


def test_check_passes_every_line_against_the_simulator(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    config = write_config(tmp_path, default_modes(), base_url=sim.url, database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["check", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"ok   config and spec          {config}: 10 resources; spec klaviyo.yaml"
    assert lines[1] == f"ok   API key                  {sim.url} accepted the key (GET /api/campaigns)"
    assert [line.split()[:3] for line in lines[2:12]] == [["ok", "scope", name] for name in default_modes()]
    assert lines[-2] == f"ok   destination              duckdb {tmp_path / 'x.duckdb'} opened and writable"
    assert lines[-1] == f"ok   lock                     {tmp_path / '.config-kl_.yaml.kl_klx.lock'} writable"
    assert rows(tmp_path / "x.duckdb", "select * from kl_klx_state") == []  # the write was rolled back


def test_check_names_the_database_file_a_run_writes_whatever_folder_it_runs_from(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    # `path: klaviyo.duckdb` resolves against the config's folder; the line said "duckdb klaviyo.duckdb", which from
    # cron or another folder reads as a file where klx check was run.
    folder = tmp_path / "etc-klx"
    folder.mkdir()
    config = write_config(folder, {"metrics": "full_refresh"}, base_url=sim.url, database=Path("klaviyo.duckdb"))
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == f"ok   destination              duckdb {folder / 'klaviyo.duckdb'} opened and writable"
    assert (folder / "klaviyo.duckdb").exists() and not (tmp_path / "klaviyo.duckdb").exists()


def test_check_names_a_refused_key_and_exits_3(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    config = write_config(tmp_path, {"lists": "incremental"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_wrong_key_000000000000000000")
    assert main(["check", str(config)]) == 3
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("FAIL API key                  Klaviyo 401 on GET /api/lists")
    assert lines[1].endswith("(hint: check source.api_key: the API did not accept the key)")
    assert lines[2].startswith("ok   destination")


def test_check_names_the_missing_scope_of_one_resource(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    def respond(handler, hit) -> None:
        parts = urlsplit(hit.path)
        if parts.path == "/api/lists":
            send(handler, 403, {"errors": [{"status": 403, "detail": "You do not have permission to perform this action."}]})
            return
        reply = sim.handle_api("GET", parts.path, parts.query, hit.headers, api.url)
        send(handler, reply.status, reply.body, dict(reply.headers))

    with HostileApi(respond) as api:
        config = write_config(tmp_path, {"metrics": "full_refresh", "lists": "incremental"}, base_url=api.url, database=tmp_path / "x.duckdb")
        monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
        assert main(["check", str(config)]) == 3
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:4] == [
        f"ok   API key                  {api.url} accepted the key (GET /api/metrics)",
        "ok   scope metrics            metrics:read",
        "FAIL scope lists              403 on GET /api/lists: the key lacks lists:read",
    ]


def test_check_fails_in_seconds_naming_an_unreachable_host(tmp_path: Path, monkeypatch, capsys) -> None:
    config = write_config(tmp_path, {"lists": "incremental"}, base_url="http://127.0.0.1:9", database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_test_0000000000000000000000")
    began = time.monotonic()
    assert main(["check", str(config)]) == 3
    took = time.monotonic() - began
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "FAIL API key                  cannot reach 127.0.0.1:9: connection refused"
    assert not any("scope" in line for line in lines)  # no point probing scopes of a host that is not there
    assert took < 10


def test_check_reports_a_destination_it_cannot_open(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    config = write_config(tmp_path, {"lists": "incremental"}, base_url=sim.url, database=tmp_path / "no" / "such" / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["check", str(config)]) == 4
    last = capsys.readouterr().out.splitlines()[-2]
    assert last.startswith(f"FAIL destination              cannot open DuckDB database {str(tmp_path / 'no' / 'such' / 'x.duckdb')!r}")


def test_check_reports_a_missing_driver_on_its_destination_line_with_exit_2(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    config = write_config(tmp_path, {"lists": "incremental"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    config.write_text(config.read_text().replace(f"  type: duckdb\n  path: {tmp_path / 'x.duckdb'}\n", "  type: postgres\n  database: test\n"))
    monkeypatch.setitem(sys.modules, "psycopg", None)  # a plain `pip install klx`, without the postgres extra
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["check", str(config)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        f"ok   config and spec          {config}: 1 resources; spec klaviyo.yaml",
        f"ok   API key                  {sim.url} accepted the key (GET /api/lists)",
        "ok   scope lists              lists:read",
    ]
    assert lines[3] == (
        f"FAIL destination              {config}:6: destination.type: 'postgres' needs the psycopg driver, which is not installed"
        f" (hint: {_install_hint('postgres')})"
    )
    assert lines[4].startswith("ok   lock ")


@pytest.mark.parametrize("how", READ_ONLY_WAYS)
def test_check_reports_a_config_folder_it_cannot_create_the_lock_in(sim: Simulator, tmp_path: Path, monkeypatch, capsys, how: str) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = write_config(folder, {"lists": "incremental"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    with read_only_folder(folder, how, monkeypatch):
        assert main(["check", str(config)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("ok   destination ")
    assert lines[-1] == (
        f"FAIL lock                     cannot create or open the lock file .config-kl_.yaml.kl_klx.lock in {folder}: Permission denied"
        f" (hint: klx keeps its lock beside the config: let the user klx runs as write in {folder} (and to .config-kl_.yaml.kl_klx.lock if it exists))"
    )


def test_check_stops_at_a_bad_config_with_exit_2(tmp_path: Path, capsys) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("source:\n  api_key: x\n  start_date: 2024-01-01\ndestination:\n  path: x.duckdb\nresources:\n  profiles: incremantal\n")
    assert main(["check", str(config)]) == 2
    assert capsys.readouterr().out == f"FAIL config and spec          {config}:7: resources.profiles: 'incremantal' is not one of full_refresh, incremental\n"


def test_least_seconds_follow_the_burst_and_steady_windows() -> None:
    from engine.commands.estimate import least_seconds
    from engine.spec import RateTier

    m = RateTier(burst=10, steady=150)
    assert [least_seconds(n, m) for n in (1, 11, 150, 151, 301)] == [0.0, 1.0, 14.9, 60.0, 120.0]


def test_plan_before_the_first_run_counts_a_page_per_partition_and_warns_of_the_backfill(sim: Simulator, tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, {"campaigns": "incremental", "metrics": "full_refresh"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    assert main(["plan", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["stream", "mode", "reads", "from", "records", "requests", "limit", "at", "least"]
    assert lines[1].split()[:7] == ["campaigns", "incremental", "2024-01-01", "00:00", "?", "6", "M"]  # six channel x archived partitions
    assert lines[2].split()[:5] == ["metrics", "full_refresh", "everything", "?", "1"]
    assert "  campaigns: volume unknown (nothing loaded yet): one page per request sequence counted (6 partitions)" in lines
    assert lines[-1].startswith("warning: large backfill: campaigns read ")
    assert not (tmp_path / "x.duckdb").exists() or rows(tmp_path / "x.duckdb", "select count(*) as n from information_schema.tables")[0]["n"] == 0


def test_plan_counts_time_windows_apart_from_partitions(tmp_path: Path) -> None:
    import io
    from datetime import datetime, timezone

    from engine.commands.estimate import estimate, print_plan

    config = write_config(tmp_path, {"events": "incremental", "flows": "incremental"}, base_url="http://127.0.0.1:9",
                          database=tmp_path / "x.duckdb")
    now = datetime(2024, 3, 15, tzinfo=timezone.utc)
    # events has no partitions and reads 2024-01-01 on in 30-day slices: Jan 1, Jan 31, Mar 1 (open); flows has two
    # partitions (archived or not) and no slices.
    events, flows = estimate(config, now=now)
    assert (events.partitions, events.windows, events.requests) == (1, 3, 3)
    assert (flows.partitions, flows.windows, flows.requests) == (2, 0, 2)
    out = io.StringIO()
    print_plan(config, out=out, now=now)
    lines = out.getvalue().splitlines()
    assert "  events: volume unknown (nothing loaded yet): one page per request sequence counted (1 partition, 3 time windows)" in lines
    assert "  flows: volume unknown (nothing loaded yet): one page per request sequence counted (2 partitions)" in lines


def test_plan_after_a_run_sizes_each_stream_from_the_warehouse(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    database = tmp_path / "x.duckdb"
    config = write_config(tmp_path, {"lists": "full_refresh", "events": "incremental"}, base_url=sim.url, database=database)
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["run", str(config)]) == 0
    capsys.readouterr()
    assert main(["plan", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    lists = len(sim.truth("lists", "2024-01-01"))
    # A full refresh reads from start_date; lists pages hold 10.
    assert lines[1].split()[:6] == ["lists", "full_refresh", "2024-01-01", "00:00", f"~{lists}", str(-(-lists // 10))]
    events = lines[2].split()
    assert events[:2] == ["events", "incremental"] and events[4].startswith("~") and events[-2:] == ["XL", events[-1]]
    assert any(line.startswith("  events: ") and " rows held from " in line for line in lines)
    assert not any(line.startswith("warning") for line in lines)


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_plan_on_a_table_whose_cursor_column_is_text_says_so_instead_of_failing(
    sim: Simulator, tmp_path: Path, monkeypatch, capsys, request: pytest.FixtureRequest, warehouse: str
) -> None:
    # RudderStack's loader stored some timestamps as text; klx adopts such a column and loads it, but plan compared
    # it with a timestamp and stopped: "COUNT RECENT ... failed: operator does not exist: text >= timestamp", exit 4.
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    if warehouse == "duckdb":
        database = tmp_path / "x.duckdb"
        config = write_config(tmp_path, {"events": "incremental"}, base_url=sim.url, database=database)
        alter = lambda text: duckdb_connection(database).execute(text).close()  # noqa: E731
        table = "kl_rudder_events"
    else:
        import psycopg

        from tests.test_postgres_destination import postgres_config
        from tests.warehouses import POSTGRES

        schema = request.getfixturevalue("pg_schema")
        config = postgres_config(tmp_path, schema, {"events": "incremental"}, base_url=sim.url,
                                 connection=["  host: 127.0.0.1", "  user: postgres", "  database: test"])
        alter = lambda text: psycopg.connect(**POSTGRES, autocommit=True).execute(text).connection.close()  # noqa: E731
        table = f'"{schema}".kl_rudder_events'
    assert main(["run", str(config)]) == 0
    alter(f'alter table {table} alter column "datetime" type text')
    capsys.readouterr()
    assert main(["plan", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["events", "incremental"]
    assert any(line.startswith("  events: volume unknown (the table's datetime column is ")
               and line.endswith(", not a timestamp): one page per request sequence counted (1 partition, 1 time window)") for line in lines)


def test_backfill_rereads_a_window_without_moving_saved_cursors_back(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    import json

    database = tmp_path / "x.duckdb"
    config = write_config(tmp_path, {"events": "incremental", "metrics": "full_refresh"}, base_url=sim.url, database=database)
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["run", str(config)]) == 0
    capsys.readouterr()
    state_before = rows(database, "select state from kl_klx_state where stream = 'events'")[0]["state"]
    with duckdb_connection(database) as con:  # rows lost downstream, to be re-read by the backfill
        con.execute("delete from kl_rudder_events where datetime >= '2026-10-01' and datetime < '2026-10-08'")
    truth = [t for t in sim.truth("events", "2024-01-01") if "2026-10-01" <= t["cursor"][:10] < "2026-10-08"]
    assert truth, "the simulator has events in the window"
    assert main(["run", str(config), "--start", "2026-10-01", "--end", "2026-10-08", "--log-format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [s["stream"] for s in summary["streams"]] == ["events"]  # a window never applies to a replaced table
    (events,) = summary["streams"]
    assert events["records"] == len(truth) and events["inserted"] == len(truth)
    assert rows(database, "select state from kl_klx_state where stream = 'events'")[0]["state"] == state_before
    back = rows(database, "select count(*) as n from kl_rudder_events where datetime >= '2026-10-01' and datetime < '2026-10-08'")
    assert back == [{"n": len(truth)}]


@pytest.mark.parametrize(("argv", "message"), [
    (["--start", "2026-10-08", "--end", "2026-10-01"], "error: --start 2026-10-08 is not before --end 2026-10-01\n"),
    (["--end", "2026-10-01"], "error: --end needs --start: a backfill re-reads [--start, --end)\n"),
    (["--start", "yesterday"], "error: --start: 'yesterday' is not a date (use YYYY-MM-DD or an ISO-8601 datetime)\n"),
    (["--start", "2026-10-01", "--full-refresh"],
     "error: --start/--end re-read a window of incremental streams; --full-refresh replaces whole tables: use one or the other\n"),
    (["--start", "2026-10-01", "--streams", "metrics"],
     "error: --streams: 'metrics' is full_refresh, and a backfill window applies to incremental streams only\n"),
])
def test_a_backfill_that_cannot_be_done_exits_2_before_touching_anything(tmp_path: Path, monkeypatch, capsys, argv: list[str], message: str) -> None:
    config = write_config(tmp_path, {"events": "incremental", "metrics": "full_refresh"}, base_url="http://127.0.0.1:9", database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_test_0000000000000000000000")
    assert main(["run", str(config), *argv]) == 2
    assert capsys.readouterr().err == message
    assert not (tmp_path / "x.duckdb").exists()


def duckdb_connection(path: Path):
    import duckdb

    return duckdb.connect(str(path))


def test_state_show_tells_a_killed_first_syncs_keys_may_repeat_and_reset_keeps_that(tmp_path: Path, capsys) -> None:
    database = tmp_path / "x.duckdb"
    config = write_config(tmp_path, {"lists": "incremental"}, base_url=None, database=database)
    dest = DuckDBDestination(path=str(database), table_prefix="kl_")
    dest.ensure_state_table()
    killed = mark_unresolved(encode_state({"": "2024-03-01T00:00:00+00:00"}, []), datetime(2024, 3, 2, tzinfo=timezone.utc))
    with dest.transaction():
        dest.save_state("lists", killed)
    dest.close()
    assert main(["state", "show", str(config)]) == 0
    assert capsys.readouterr().out.splitlines()[2] == (
        "  a first sync stopped after loading rows at 2024-03-02T00:00:00+00:00: the table may hold a key more than once "
        "until the stream's next run ends, which keeps the newest row of each")
    assert main(["state", "reset", str(config)]) == 0
    capsys.readouterr()
    assert main(["state", "show", str(config), "--log-format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["streams"] == {"lists": {"cursor": {}, "columns": 0, "repeats_unresolved": "2024-03-02T00:00:00+00:00"}}


def test_plan_warns_of_each_streams_backfill_from_its_own_start(tmp_path: Path) -> None:
    import io

    from engine.commands.estimate import print_plan

    config = write_config(tmp_path, {"campaigns": "incremental", "global_exclusions": "incremental", "lists": "incremental"},
                          base_url="http://127.0.0.1:9", database=tmp_path / "x.duckdb")
    out = io.StringIO()
    print_plan(config, out=out, now=SIM_NOW)
    lines = out.getvalue().splitlines()
    assert lines[2].split()[:4] == ["global_exclusions", "incremental", "1970-01-01", "00:00"]  # every suppression, whatever start_date
    # global_exclusions' suppressed read is as large as what is suppressed, not as the days since 1970: no warning by days.
    assert [line for line in lines if line.startswith("warning")] == [
        "warning: large backfill: campaigns, lists read 1,035 days since 2024-01-01 with nothing loaded yet to size them; "
        "a first run over years of events can take hours",
    ]


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_commands_that_only_read_make_no_database_file_and_no_schema(tmp_path: Path, monkeypatch, capsys, request, warehouse: str) -> None:
    # klx plan, runs, state show and discover --columns with a mistyped path or schema left a new DuckDB file or
    # PostgreSQL schema behind. They now read what is there and say nothing is loaded yet.
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_x")
    resources = {"lists": "incremental", "metrics": "full_refresh"}
    database = tmp_path / "nothere.duckdb"
    if warehouse == "duckdb":
        config = write_config(tmp_path, resources, base_url="http://127.0.0.1:9", database=database)
        made = lambda: database.exists()  # noqa: E731
    else:
        import psycopg

        from tests.test_postgres_destination import postgres_config
        from tests.warehouses import POSTGRES

        schema = request.getfixturevalue("pg_schema")
        config = postgres_config(tmp_path, schema, resources, base_url="http://127.0.0.1:9",
                                 connection=["  host: 127.0.0.1", "  user: postgres", "  database: test"])

        def made() -> bool:
            with psycopg.connect(**POSTGRES) as con:
                return bool(con.execute("select 1 from information_schema.schemata where schema_name = %s", (schema,)).fetchall())
    for command in (["plan"], ["runs"], ["state", "show"], ["discover"]):
        extra = ["--columns"] if command == ["discover"] else []
        assert main([*command, str(config), *extra]) == 0, command
        assert not made(), command
    out = capsys.readouterr().out
    assert "no runs recorded yet in kl_klx_runs" in out and "lists: no saved state" in out and "kl_rudder_metrics: not loaded yet" in out
    assert "lists: volume unknown (nothing loaded yet)" in out
    # state reset writes, but with nothing saved there is nothing to write: a mistyped schema was created to say so.
    assert main(["state", "reset", str(config)]) == 0
    assert not made()
    assert capsys.readouterr().out.splitlines() == ["lists: no saved state, nothing to reset", "metrics: no saved state, nothing to reset"]
    # A command that writes still makes them (klx check proves the destination writable; its API is not there).
    assert main(["check", str(config)]) == 3
    assert made()


def test_a_placeholder_for_an_unset_variable_masks_no_ordinary_word(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `klx state reset` or `klx runs` without KLAVIYO_API_KEY read the key as "unset", a secret from then on: any
    # later message of the process saying "unset" showed "***" (a REQUESTS_CA_BUNDLE error's "or unset it").
    from engine import errors
    from engine.commands import config_without_secrets

    monkeypatch.setattr(errors, "_SECRETS", set())
    monkeypatch.delenv("KLAVIYO_API_KEY", raising=False)
    config = config_without_secrets(write_config(tmp_path, {"lists": "incremental"}, base_url=None, database=tmp_path / "x.duckdb"))
    assert config.source.api_key.reveal() not in "unset it"
    assert str(errors.ConfigError("point it at a file, or unset it")) == "point it at a file, or unset it"
