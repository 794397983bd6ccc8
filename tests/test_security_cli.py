"""The klx command under hostile conditions: Ctrl-C during a hung request, hangs, unexpected errors, --debug."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine import cli
from engine.cli import main
from klaviyo_sim import Simulator
from tests.hostile_api import HostileApi, metric, send, wait_for
from tests.klx_testing import ROOT, SIM_NOW, rows, write_config

KEY = "pk_cli_0123456789abcdefghijkl"


def first_page_then_hang(api_holder: list[HostileApi]):
    """Page 1 holds three metrics and links to page 2, which never answers."""

    def respond(handler, hit) -> None:
        if "page=2" in hit.path:
            api_holder[0].hang()
        else:
            send(handler, 200, {"data": [metric(1), metric(2), metric(3)], "links": {"next": f"{api_holder[0].url}/api/metrics?page=2"}})

    return respond


def signalled_while_hung(tmp_path: Path, sig: signal.Signals) -> tuple[subprocess.CompletedProcess[str], float, Path]:
    """`klx run` of metrics, sent `sig` while page 2 hangs (page 1's records in the open batch): what it printed and
    returned, seconds from the signal to its exit, and its database."""
    holder: list[HostileApi] = []
    with HostileApi(first_page_then_hang(holder)) as api:
        holder.append(api)
        database = tmp_path / "x.duckdb"
        config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=api.url, database=database)
        env = {**os.environ, "KLAVIYO_API_KEY": KEY}
        command = [sys.executable, "-m", "engine.cli", "run", str(config)]
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # A test run started in the background (`cmd &` without job control) ignores SIGINT, and an exec'd
            # child inherits that: give klx the disposition a terminal user's klx has.
            preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL),
        )
        try:
            wait_for(lambda: len(api.hits) == 2, 30)  # page 2 is hanging now
            time.sleep(0.2)
            sent = time.monotonic()
            process.send_signal(sig)
            out, err = process.communicate(timeout=60)
            took = time.monotonic() - sent
        finally:
            process.kill()
    return subprocess.CompletedProcess(command, process.returncode, out, err), took, database


def test_first_ctrl_c_stops_a_hung_request_at_once_and_rolls_back(tmp_path: Path) -> None:
    done, took, database = signalled_while_hung(tmp_path, signal.SIGINT)
    assert done.returncode == 130
    # stderr also carries the progress log lines (a pipe is not a terminal); the last line is the verdict.
    assert done.stderr.splitlines()[-1] == "interrupted; committed batches are kept, the rest is rolled back" and "Traceback" not in done.stderr
    # The hung request is cut, not waited for: its deadline is 120 s. Well under a second on a quiet machine;
    # the bound leaves room for a loaded one (5.4 s seen at load 30) without admitting the deadline.
    assert took < 30
    # The three records of page 1 were in the open batch: rolled back, no table appeared.
    assert rows(database, "select table_name from information_schema.tables where table_name like '%metrics%'") == []


def test_sigterm_ends_a_run_as_ctrl_c_does_with_its_summary_and_history_row(tmp_path: Path) -> None:
    # systemd, Kubernetes, Airflow and `timeout` send SIGTERM; by default it killed klx run with exit 143, no
    # summary and no klx_runs row.
    done, _, database = signalled_while_hung(tmp_path, signal.SIGTERM)
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines()[-1] == "interrupted; committed batches are kept, the rest is rolled back" and "Traceback" not in done.stderr
    assert "metrics" in done.stdout  # the summary
    [run] = rows(database, "select run_status, stream, status from kl_klx_runs")
    assert (run["run_status"], run["stream"], run["status"]) == ("interrupted", "metrics", "interrupted")
    assert rows(database, "select table_name from information_schema.tables where table_name like '%rudder_metrics%'") == []


def test_with_log_format_json_warnings_and_errors_on_stderr_are_json_objects_too(tmp_path: Path) -> None:
    # An orchestrator merges stdout and stderr: a retry's warning and the final error must parse as well.
    with Simulator(seed=0, scale=0.02, now=SIM_NOW) as sim:
        sim.faults.queue(["503"])
        database = tmp_path / "x.duckdb"
        config = write_config(tmp_path, {"metrics": "full_refresh", "lists": "incremental"}, base_url=sim.url, database=database)
        env = {**os.environ, "KLAVIYO_API_KEY": sim.api_key}
        done = subprocess.run([sys.executable, "-m", "engine.cli", "--log-format", "json", "run", str(config)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        errs = [json.loads(line) for line in done.stderr.splitlines()]
        assert [(e["event"], e["level"], e["logger"]) for e in errs if e["event"] == "log"][:1] == [("log", "warning", "klx.http")]
        assert all(json.loads(line) for line in done.stdout.splitlines())
        refused = subprocess.run([sys.executable, "-m", "engine.cli", "--log-format", "json", "run", str(config)], cwd=ROOT,
                                 env={**env, "KLAVIYO_API_KEY": "pk_wrong_0123456789"}, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 3
    errs = [json.loads(line) for line in refused.stderr.splitlines()]
    assert errs[-1]["event"] == "error" and errs[-1]["exit_code"] == 3 and "401" in errs[-1]["message"] and "hint" in errs[-1]
    assert "pk_wrong_0123456789" not in refused.stderr + refused.stdout


def test_an_unexpected_error_is_one_line_without_traceback(monkeypatch, capsys, tmp_path: Path) -> None:
    def broken(args):
        raise ZeroDivisionError(f"division by zero \x1b[31m{KEY}")

    from engine.config import Secret

    Secret(KEY)  # the run would have loaded it
    monkeypatch.setattr(cli, "_run", broken)
    assert main(["run", str(tmp_path / "c.yaml")]) == 1
    captured = capsys.readouterr()
    assert captured.err == "internal error: ZeroDivisionError: division by zero *** (run with --debug for the traceback)\n"
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize("argv", [["--debug", "run", "{config}"], ["run", "{config}", "--debug"], ["-v", "run", "{config}", "--debug"]])
def test_debug_shows_the_traceback_of_an_unexpected_error_masked(argv: list[str], monkeypatch, capsys, tmp_path: Path) -> None:
    def broken(args):
        raise ZeroDivisionError(f"boom {KEY}")

    from engine.config import Secret

    Secret(KEY)
    monkeypatch.setattr(cli, "_run", broken)
    config = tmp_path / "c.yaml"
    assert main([a.format(config=config) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert err.endswith("ZeroDivisionError: boom ***\ninternal error: ZeroDivisionError: boom ***\n")
    assert KEY not in err


def test_debug_shows_the_traceback_of_a_klx_error(capsys, tmp_path: Path) -> None:
    assert main(["run", str(tmp_path / "missing.yaml"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert err.endswith(f"error: {tmp_path / 'missing.yaml'}: cannot read {tmp_path / 'missing.yaml'}: No such file or directory\n")


@pytest.mark.parametrize("argv", [["-v", "run", "{config}"], ["run", "{config}", "-v"], ["run", "-v", "{config}"]])
def test_verbose_works_before_and_after_the_subcommand(argv: list[str]) -> None:
    args = cli.build_parser().parse_args([a.format(config="c.yaml") for a in argv])
    assert (args.verbose, args.debug) == (True, False)


def test_flags_default_off_without_them() -> None:
    args = cli.build_parser().parse_args(["run", "c.yaml"])
    assert (args.verbose, args.debug) == (False, False)


def test_log_lines_are_cleaned_and_masked() -> None:
    import logging

    from engine.config import Secret
    from engine.errors import CleanFormatter

    Secret(KEY)
    record = logging.LogRecord("klx.http", logging.WARNING, __file__, 1, "retry %s\x1b[2J\nFAKE LINE", (KEY,), None)
    assert CleanFormatter(logging.Formatter("%(levelname)s %(message)s")).format(record) == "WARNING retry *** FAKE LINE"


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_while_an_interrupted_run_winds_down_is_ignored(second: signal.Signals, tmp_path: Path, monkeypatch, capsys) -> None:
    # Users press Ctrl-C twice. The second one used to land wherever the ending run was (waiting for the streams,
    # inside a weakref callback: Python's "Exception ignored ... KeyboardInterrupt" traceback), cutting the wind-down
    # short: the writes in flight lost their connection and the klx_runs row could go unwritten.
    from engine.commands import sync as sync_cmd

    wound_down: list[bool] = []

    def interrupted_run(config, *, events, **options):
        events.planned([("metrics", "full_refresh")])
        events.started("metrics")
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: the handler raises here
            time.sleep(5)
        finally:
            os.kill(os.getpid(), second)  # the second, while the streams end at their last commit
            wound_down.append(True)

    monkeypatch.setattr(sync_cmd, "run", interrupted_run)
    monkeypatch.setenv("KLAVIYO_API_KEY", KEY)
    # A terminal user's klx: Python's own SIGINT handler, SIGTERM's default (a background test run may ignore SIGINT).
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler), signal.SIGTERM: signal.signal(signal.SIGTERM, signal.SIG_DFL)}
    try:
        database = tmp_path / "x.duckdb"
        config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url="http://127.0.0.1:9", database=database)
        assert main(["run", str(config)]) == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    captured = capsys.readouterr()
    assert wound_down == [True]
    assert captured.err.splitlines()[-1] == "interrupted; committed batches are kept, the rest is rolled back"
    assert "Traceback" not in captured.err and "Exception ignored" not in captured.err
    [recorded] = rows(database, "select run_status, stream, status from kl_klx_runs")
    assert (recorded["run_status"], recorded["stream"], recorded["status"]) == ("interrupted", "metrics", "interrupted")  # cut short by the Ctrl-C (b1ab781)


class CtrlCInAFinalizer:
    """Sends SIGINT from its __del__: the signal's handler runs inside the finalizer, where Python drops what it raises."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)


def test_a_ctrl_c_that_lands_in_a_finalizer_still_stops_the_run(tmp_path: Path, monkeypatch, capsys) -> None:
    # Ctrl-C raised KeyboardInterrupt wherever the main thread was. Inside a finalizer (a garbage collection running
    # a ThreadPoolExecutor's weakref callback, a __del__) Python printed "Exception ignored" and dropped it; the
    # handler had already set SIGINT and SIGTERM to be ignored, so the run went on to its end, deaf to more Ctrl-C.
    from engine import concurrency

    fired: list[bool] = []
    real_wait = concurrency.wait

    def wait_after_a_finalizer(*args, **kwargs):
        if not fired and threading.current_thread() is threading.main_thread():
            fired.append(True)
            CtrlCInAFinalizer()  # dropped at once: its __del__ runs here, on the main thread, while the stream runs
        return real_wait(*args, **kwargs)

    holder: list[HostileApi] = []

    def respond(handler, hit) -> None:
        if "page=2" not in hit.path:
            send(handler, 200, {"data": [metric(1), metric(2), metric(3)], "links": {"next": f"{holder[0].url}/api/metrics?page=2"}})
        elif not holder[0].stopping.wait(30):  # a run that was not stopped gets its last page, late, and ends
            send(handler, 200, {"data": [metric(4)], "links": {"next": None}})

    monkeypatch.setattr(concurrency, "wait", wait_after_a_finalizer)
    monkeypatch.setenv("KLAVIYO_API_KEY", KEY)
    database = tmp_path / "x.duckdb"
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler), signal.SIGTERM: signal.signal(signal.SIGTERM, signal.SIG_DFL)}
    try:
        with HostileApi(respond) as api:
            holder.append(api)
            config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=api.url, database=database)
            began = time.monotonic()
            code = main(["run", str(config)])
            took = time.monotonic() - began
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    captured = capsys.readouterr()
    assert fired == [True]
    assert code == 130, captured.err
    assert took < 30  # the hanging page 2 was cut, not waited for
    assert captured.err.splitlines()[-1] == "interrupted; committed batches are kept, the rest is rolled back"
    assert "Exception ignored" not in captured.err
    [recorded] = rows(database, "select run_status, stream, status from kl_klx_runs")
    assert (recorded["run_status"], recorded["stream"], recorded["status"]) == ("interrupted", "metrics", "interrupted")
    assert rows(database, "select table_name from information_schema.tables where table_name like '%rudder_metrics%'") == []


def test_a_run_started_in_the_background_keeps_ignoring_ctrl_c(tmp_path: Path, monkeypatch) -> None:
    # `klx run config.yaml &` from a script: the shell has the job ignore SIGINT, and klx must not take that back.
    from engine.commands import sync as sync_cmd

    seen: list[object] = []
    monkeypatch.setattr(sync_cmd, "_sync", lambda config, **options: seen.append(signal.getsignal(signal.SIGINT)))
    monkeypatch.setenv("KLAVIYO_API_KEY", KEY)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url="http://127.0.0.1:9", database=tmp_path / "x.duckdb")
        from engine.config import Config

        sync_cmd.sync_once(Config.from_yaml(config))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == [signal.SIG_IGN]


@pytest.mark.parametrize(("command", "said"), [
    ("check", "interrupted"),
    ("plan", "interrupted"),
    ("run", "interrupted; committed batches are kept, the rest is rolled back"),
])
def test_ctrl_c_speaks_of_batches_only_for_a_command_that_loads_them(command: str, said: str, monkeypatch, capsys) -> None:
    # Ctrl-C on a `klx check` waiting on a probe said "committed batches are kept, the rest is rolled back".
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, f"_{command}", interrupted)
    assert main([command, "config.yaml"]) == 130
    assert capsys.readouterr().err == said + "\n"
