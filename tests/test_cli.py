"""The klx command: exit codes and the exact text a user sees."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.cli import main
from engine.cli_output import print_summary
from engine.history import RunRecord, StreamRecord
from engine.run import RunSummary, StreamSummary
from klaviyo_sim import Simulator
from tests.expected_rows import expected_figures
from tests.klx_testing import ROOT, SIM_NOW, START_DATE, default_modes, write_config

SECRET = "pk_wrong_0123456789abcdefghijkl"


@pytest.fixture(scope="module")
def sim():
    with Simulator(seed=5, scale=0.05, now=SIM_NOW) as simulator:
        yield simulator


def test_run_prints_a_summary_per_stream_and_exits_0(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    modes = {"campaigns": "incremental", "global_exclusions": "incremental", "lists": "incremental", "metrics": "full_refresh"}
    config = write_config(tmp_path, modes, base_url=sim.url, database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["run", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["stream", "mode", "status", "events", "rows", "inserted", "updated", "pages", "requests", "retries", "429s", "waited", "seconds"]
    # Exact figures from the simulator's truth: events are records returned (global exclusions read only
    # suppressed profiles, plus an empty read of changed ones), pages one per page_size of each partition (campaigns have six).
    expected = {name: expected_figures(sim, name, START_DATE) for name in modes}
    lines = [line.split() for line in out[1:5]]
    assert [[s[0], s[1], s[2], s[3], s[4], s[7]] for s in lines] == [[name, mode, "done", *map(str, expected[name])] for name, mode in modes.items()]
    totals = [sum(figures[i] for figures in expected.values()) for i in range(3)]
    total = out[5].split()
    assert [total[0], total[1], total[2], total[5]] == ["total", *map(str, totals)]
    assert out[6].startswith("run ") and f" succeeded: {totals[0]} events in " in out[6]


def test_the_summary_gives_the_runs_own_duration_and_rate_when_streams_ran_side_by_side() -> None:
    began = datetime(2026, 1, 1, tzinfo=timezone.utc)
    streams = tuple(StreamRecord(stream=name, mode="full_refresh", status="done", records=6_000, rows=6_000, seconds=10.0)
                    for name in ("events", "profiles"))
    out = io.StringIO()
    print_summary(RunRecord(run_id="r", started_at=began, ended_at=began + timedelta(seconds=12), status="succeeded", streams=streams), out)
    lines = out.getvalue().splitlines()
    assert [line.split()[-1] for line in lines[1:4]] == ["10.00", "10.00", "12.00"]
    assert lines[4] == "run r succeeded: 12000 events in 12.0s (1,000 events/s)"


@pytest.mark.parametrize(("n", "tail"), [
    (1, "1 event in 12.0s (0 events/s); 1 stream failed, 1 record rejected, 1 warning"),
    (2, "4 events in 12.0s (0 events/s); 2 streams failed, 4 records rejected, 2 warnings"),
])
def test_the_summary_counts_in_the_singular_for_one_and_the_plural_otherwise(n: int, tail: str) -> None:
    began = datetime(2026, 1, 1, tzinfo=timezone.utc)
    names = ("events", "profiles")[:n]
    streams = tuple(StreamRecord(stream=name, mode="incremental", status="failed", records=n, rejected=n) for name in names)
    summary = RunSummary(job_run_id="r", started_at=began,
                         streams=[StreamSummary(stream=name, mode="incremental", table=name, warnings=["w"]) for name in names])
    out = io.StringIO()
    print_summary(RunRecord(run_id="r", started_at=began, ended_at=began + timedelta(seconds=12), status="failed", streams=streams), out,
                  summary=summary)
    assert out.getvalue().splitlines()[-1] == f"run r failed: {tail}"


def test_streams_option_limits_the_run(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    config = write_config(tmp_path, {"lists": "incremental", "metrics": "full_refresh"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["run", str(config), "--streams", "metrics", "--full-refresh"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[1:-2]] == ["metrics"]


@pytest.mark.parametrize("command", [["run"], ["state", "show"], ["sql"]])
@pytest.mark.parametrize("streams", ["", " , "])
def test_streams_option_naming_no_resource_is_refused_not_read_as_all(tmp_path: Path, monkeypatch, capsys, command, streams) -> None:
    # `--streams "$LIST"` with an empty variable ran every stream of the config.
    config = write_config(tmp_path, {"lists": "incremental", "metrics": "full_refresh"}, base_url="http://127.0.0.1:9", database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_x")
    assert main([*command, str(config), "--streams", streams]) == 2
    assert capsys.readouterr().err == f"error: --streams: {streams!r} names no resource; name one or more (a,b), or leave the flag out for all\n"
    assert not (tmp_path / "x.duckdb").exists()


def test_help_points_an_installed_klx_to_klx_init_not_to_a_file_of_the_repository(capsys) -> None:
    # After `pip install .` no config.example.yaml sits in the user's folder: `klx init` writes the starter config.
    for argv in (["--help"], ["run", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "config.example.yaml" not in text and "klx init" in text


def test_bad_config_exits_2_naming_file_line_and_key(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    Path("config.yaml").write_text("source:\n  api_key: x\n  start_date: 2024-01-01\ndestination:\n  path: x.duckdb\nresources:\n  profiles: incremantal\n")
    assert main(["run", "config.yaml"]) == 2
    assert capsys.readouterr().err == "error: config.yaml:7: resources.profiles: 'incremantal' is not one of full_refresh, incremental\n"


def test_missing_config_file_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "nope.yaml"]) == 2
    assert capsys.readouterr().err == "error: nope.yaml: cannot read nope.yaml: No such file or directory\n"


def test_rejected_key_exits_3_with_klaviyos_detail_and_no_secret(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=sim.url, database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", SECRET)
    assert main(["-v", "run", str(config)]) == 3
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-2:] == [
        "error: Klaviyo 401 on GET /api/metrics (stream metrics): Incorrect authentication credentials.",
        "  hint: check source.api_key: the API did not accept the key",
    ]
    assert SECRET not in captured.err + captured.out
    # Nothing was half-written: the table was never created.
    import duckdb

    with duckdb.connect(str(tmp_path / "x.duckdb")) as con:
        tables = {t for (t,) in con.execute("select table_name from information_schema.tables").fetchall()}
    assert "kl_rudder_metrics" not in tables


def test_a_base_url_ending_in_the_api_path_is_named_on_every_404(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    # `base_url: https://a.klaviyo.com/api` is an easy slip: every request goes to /api/api/... and each stream
    # failed with a bare "Not found." that said nothing of the config.
    config = write_config(tmp_path, {"metrics": "full_refresh", "lists": "incremental"}, base_url=sim.url + "/api", database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["run", str(config)]) == 3
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    hint = f"(hint: check source.base_url ({sim.url}/api): it is the API's root, to which the spec adds paths like /api/api/"
    assert errors == [
        f"error: stream metrics failed: Klaviyo 404 on GET /api/api/metrics (stream metrics): Not found. {hint}metrics)",
        "error: stream lists failed: Klaviyo 404 on GET /api/api/lists?include=tags&page[size]=10&filter=greater-than(updated,2023-12-31T23:59:59%2B00:00)"
        f"&sort=updated (stream lists): Not found. {hint}lists)",
    ]


def test_a_ca_bundle_variable_naming_no_file_is_refused_at_once_by_run_and_check(tmp_path: Path, monkeypatch, capsys) -> None:
    # README: behind a TLS-inspecting proxy, point REQUESTS_CA_BUNDLE at its CA certificate. A path that is not
    # there made every request raise a bare OSError, retried as a network failure: klx run gave up after 81 s
    # with "unreachable ...: OSError", klx check said "cannot reach ...: OSError".
    missing = tmp_path / "proxy-ca.pem"
    config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url="https://127.0.0.1:9", database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", SECRET)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(missing))
    said = (f"REQUESTS_CA_BUNDLE={missing}: no such file or folder",
            "point REQUESTS_CA_BUNDLE at the CA certificate (PEM) of the TLS-inspecting proxy, or unset it")
    assert main(["run", str(config)]) == 2
    assert capsys.readouterr().err == f"error: {said[0]}\n  hint: {said[1]}\n"
    assert main(["check", str(config)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == f"FAIL API key                  {said[0]} (hint: {said[1]})"
    assert [line.split()[1] for line in lines[2:]] == ["destination", "lock"]


def test_unknown_destination_type_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    Path("config.yaml").write_text("source:\n  api_key: x\n  start_date: 2024-01-01\ndestination:\n  type: oracle\nresources:\n  metrics: full_refresh\n")
    assert main(["run", "config.yaml"]) == 2
    assert capsys.readouterr().err == "error: config.yaml:5: destination.type: unknown 'oracle'; known: duckdb, postgres, snowflake\n"


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["demo", "--help"], ["sim", "--help"], ["init", "--help"], ["schedule", "--help"], ["runs", "--help"], ["discover", "--help"], ["state", "--help"], ["check", "--help"], ["plan", "--help"]])
def test_every_command_has_help(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    assert "usage: klx" in capsys.readouterr().out


def test_unusable_warehouse_exits_4(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "x.duckdb"
    config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=sim.url, database=missing)
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    assert main(["run", str(config)]) == 4
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot open DuckDB database {str(missing)!r}: ")
    assert err.endswith("\n  hint: check destination.path: its folder must exist and be writable, and the file itself (when it exists) writable by this user\n")


@pytest.mark.parametrize("argv", [["run", "--help"], ["-v", "--log-format", "json", "sql", "--help"], ["check", "--help", "-v"]])
def test_klx_own_commands_do_not_look_for_plugin_commands(argv: list[str], monkeypatch) -> None:
    """Reading the installed entry points and importing the simulator cost `klx run` 40-60 ms before its work."""
    from engine import cli

    monkeypatch.setattr(cli, "_add_plugin_commands", lambda commands: pytest.fail("plugin commands looked for"))
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0


@pytest.mark.parametrize("argv", [["--help"], ["-v", "--help"], ["--log-format", "json", "--help"]])
def test_the_command_list_still_names_the_plugin_commands(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    listed = capsys.readouterr().out
    assert "\n    sim " in listed and "\n    demo " in listed


@pytest.mark.parametrize("argv", [["discover"], ["sql", "CONFIG"], ["plan", "CONFIG"]])
def test_a_reader_that_stops_early_ends_klx_quietly_with_141(tmp_path: Path, argv: list[str]) -> None:
    config = write_config(tmp_path, default_modes(), base_url="http://127.0.0.1:9", database=tmp_path / "x.duckdb")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before klx prints (`klx sql config.yaml | head` once head has its lines)
    try:
        done = subprocess.run([sys.executable, "-m", "engine.cli", *(str(config) if a == "CONFIG" else a for a in argv)],
                              cwd=ROOT, stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")
