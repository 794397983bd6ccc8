"""`klx schedule`: Basic and CRON run times, skipped overlaps, the lock, signals; a fake clock, never sleeps."""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from engine.cli import main
from engine.commands import schedule as schedule_cmd
from engine.config import Config, ScheduleConfig
from engine.errors import ConfigError
from engine.lock import LockedError, RunLock
from engine.schedule import Scheduler, Stop, next_runs
from klaviyo_sim import Simulator
from tests.klx_testing import ROOT, SIM_NOW, READ_ONLY_WAYS, read_only_folder, rows, write_config

UTC = timezone.utc


def basic(every: timedelta, start: str = "00:00") -> ScheduleConfig:
    return ScheduleConfig(type="basic", every=every, start_time=time.fromisoformat(start), where="config.yaml:9")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class FakeClock:
    """Time moves only when the scheduler waits or a fake sync says it took a while."""

    def __init__(self, now: datetime, stop: Stop) -> None:
        self.now_value, self.stop, self.waits = now, stop, []

    def now(self) -> datetime:
        return self.now_value

    def wait_until(self, when: datetime) -> None:
        self.waits.append(when)
        self.now_value = max(self.now_value, when)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        (basic(timedelta(hours=3), "02:00"), "2026-11-30 10:30", ["2026-11-30 11:00", "2026-11-30 14:00", "2026-11-30 17:00"]),
        (basic(timedelta(minutes=5)), "2026-11-30 10:02:59", ["2026-11-30 10:05", "2026-11-30 10:10", "2026-11-30 10:15"]),
        (basic(timedelta(hours=24), "02:00"), "2026-11-30 03:00", ["2026-12-01 02:00", "2026-12-02 02:00", "2026-12-03 02:00"]),
        (basic(timedelta(hours=6), "23:30"), "2026-11-30 23:30", ["2026-12-01 05:30", "2026-12-01 11:30", "2026-12-01 17:30"]),
        (ScheduleConfig(type="cron", cron="15 2 * * 1-5", where="c:1"), "2026-11-27 03:00", ["2026-11-30 02:15", "2026-12-01 02:15", "2026-12-02 02:15"]),
    ],
)
def test_next_runs_follow_the_basic_grid_anchored_at_start_time_or_the_cron_expression(schedule, after, expected) -> None:
    assert next_runs(schedule, at(after), 3) == [at(t) for t in expected]


def schedule_config(tmp_path: Path, schedule: str, *, base_url: str = "http://127.0.0.1:9", database: Path | None = None) -> Path:
    path = write_config(tmp_path, {"metrics": "full_refresh", "lists": "incremental"}, base_url=base_url, database=database or tmp_path / "x.duckdb")
    path.write_text(path.read_text() + "schedule:\n" + schedule)
    return path


def test_next_prints_the_next_run_times(tmp_path: Path, capsys) -> None:
    config = schedule_config(tmp_path, "  type: basic\n  every: 6h\n  start_time: '02:00'\n")
    assert schedule_cmd.print_next(config, 5, now=at("2026-11-30 09:00")) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2026-11-30 14:00 UTC", "2026-11-30 20:00 UTC", "2026-12-01 02:00 UTC", "2026-12-01 08:00 UTC", "2026-12-01 14:00 UTC",
    ]


@pytest.mark.parametrize("count", ["0", "-1"])
def test_next_below_one_is_refused_naming_the_option(tmp_path: Path, capsys, count: str) -> None:
    # It printed nothing and exited 0.
    config = schedule_config(tmp_path, "  type: basic\n  every: 6h\n")
    with pytest.raises(SystemExit) as exited:
        main(["schedule", str(config), "--next", count])
    assert exited.value.code == 2 and capsys.readouterr().err.splitlines()[-1] == f"klx schedule: error: argument --next: {count} is not 1 or more"


def test_next_on_the_command_line_needs_no_api_key(tmp_path: Path, monkeypatch, capsys) -> None:
    config = schedule_config(tmp_path, "  type: cron\n  cron: '0 * * * *'\n")
    monkeypatch.delenv("KLAVIYO_API_KEY", raising=False)
    assert main(["schedule", "--next", "3", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.endswith(":00 UTC") for line in lines)


def test_manual_schedule_is_refused_with_a_pointer_to_klx_run(tmp_path: Path, capsys) -> None:
    config = schedule_config(tmp_path, "  type: manual\n")
    assert main(["schedule", str(config)]) == 2
    assert capsys.readouterr().err == (
        f"error: {config}:13: schedule.type is manual, so klx schedule has nothing to run\n"
        "  hint: run `klx run CONFIG` yourself (or from cron / Airflow), or set schedule.type to basic or cron\n"
    )


def test_a_sync_longer_than_the_interval_skips_the_runs_it_overlapped_and_says_so() -> None:
    stop = Stop()
    clock = FakeClock(at("2026-11-30 10:01"), stop)
    started: list[datetime] = []
    said: list[str] = []

    def sync(due: datetime) -> None:
        started.append(due)
        if len(started) == 1:
            clock.now_value = due + timedelta(minutes=17)  # overlaps the runs due at 10:10, 10:15 and 10:20

    Scheduler(basic(timedelta(minutes=5)), sync, clock=clock, stop=stop, say=said.append).serve(max_runs=2)
    assert started == [at("2026-11-30 10:05"), at("2026-11-30 10:25")]
    assert said == [
        "next sync at 2026-11-30 10:05 UTC",
        "skipped 3 sync(s) due at 2026-11-30 10:10 UTC, 2026-11-30 10:15 UTC, 2026-11-30 10:20 UTC: the sync started at 2026-11-30 10:05 UTC was still running",
        "next sync at 2026-11-30 10:25 UTC",
    ]


def test_stop_while_waiting_ends_the_loop_without_a_sync() -> None:
    stop = Stop()

    class StoppedWhileWaiting(FakeClock):
        def wait_until(self, when: datetime) -> None:
            stop.request("SIGTERM")

    said: list[str] = []
    count = Scheduler(basic(timedelta(hours=1)), lambda due: None, clock=StoppedWhileWaiting(at("2026-11-30 10:00"), stop), stop=stop, say=said.append).serve()
    assert count == 0
    assert said == ["next sync at 2026-11-30 11:00 UTC", "stopped by SIGTERM"]


@pytest.fixture(scope="module")
def sim():
    with Simulator(seed=3, scale=0.03, now=SIM_NOW) as simulator:
        yield simulator


def test_schedule_syncs_on_each_tick_against_the_simulator(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    database = tmp_path / "s.duckdb"
    config = schedule_config(tmp_path, "  type: basic\n  every: 15m\n", base_url=sim.url, database=database)
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    stop = Stop()
    clock = FakeClock(at("2026-11-30 10:07"), stop)
    assert schedule_cmd.serve(config, clock=clock, stop=stop, max_runs=2) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"klx schedule: every 15m from 00:00 UTC for {config}; stop with Ctrl-C or SIGTERM"
    assert out[1:3] == ["next sync at 2026-11-30 10:15 UTC", "sync due at 2026-11-30 10:15 UTC starting"]
    assert [line for line in out if line.startswith("next sync")] == ["next sync at 2026-11-30 10:15 UTC", "next sync at 2026-11-30 10:30 UTC"]
    assert sum(line.startswith("total") for line in out) == 2
    assert clock.waits == [at("2026-11-30 10:15"), at("2026-11-30 10:30")]
    assert rows(database, "select count(*) as n from kl_rudder_metrics")[0]["n"] == len(sim.store.truth("metrics"))


def test_with_log_format_json_every_line_of_a_schedule_is_a_json_object(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    # The container recipe's ENTRYPOINT: `docker logs` must parse every line, the schedule's own ones too.
    config = schedule_config(tmp_path, "  type: basic\n  every: 15m\n", base_url=sim.url, database=tmp_path / "s.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    stop = Stop()
    assert schedule_cmd.serve(config, clock=FakeClock(at("2026-11-30 10:07"), stop), stop=stop, max_runs=1, log_format="json") == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    said = [line["message"] for line in lines if line["event"] == "schedule"]
    assert said[:3] == [f"klx schedule: every 15m from 00:00 UTC for {config}; stop with Ctrl-C or SIGTERM",
                        "next sync at 2026-11-30 10:15 UTC", "sync due at 2026-11-30 10:15 UTC starting"]
    assert {"started", "done", "summary"} <= {line["event"] for line in lines}
    assert all(json.loads(line) for line in captured.err.splitlines())


def test_a_scheduled_sync_is_skipped_while_another_process_holds_the_lock(tmp_path: Path, monkeypatch, capsys) -> None:
    config = schedule_config(tmp_path, "  type: basic\n  every: 15m\n")
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_test")
    stop = Stop()
    with RunLock.for_config(config, "kl_"):
        assert schedule_cmd.serve(config, clock=FakeClock(at("2026-11-30 10:07"), stop), stop=stop, max_runs=1) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith(f"skipped the sync due at 2026-11-30 10:15 UTC: {config} (table prefix 'kl_') is already being synced by pid {os.getpid()} on ")


def test_a_failed_scheduled_sync_is_reported_and_the_schedule_goes_on(tmp_path: Path, monkeypatch, capsys) -> None:
    config = schedule_config(tmp_path, "  type: basic\n  every: 15m\n")
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_test")
    stop = Stop()

    def failing(config: Config) -> None:
        raise LockedError("simulated refusal")

    assert schedule_cmd.serve(config, clock=FakeClock(at("2026-11-30 10:07"), stop), stop=stop, sync=failing, max_runs=2) == 0
    out = capsys.readouterr().out.splitlines()
    assert out.count("skipped the sync due at 2026-11-30 10:15 UTC: simulated refusal") == 1
    assert "next sync at 2026-11-30 10:30 UTC" in out


def test_a_scheduled_sync_whose_streams_failed_is_logged_with_its_exit_code(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    # docs/scheduling.md: "A failed sync (API refusal, warehouse error) is logged with its exit code." A run whose
    # streams fail one by one (a 404 on each, a warehouse refusing one table) returns rather than raises.
    config = schedule_config(tmp_path, "  type: basic\n  every: 15m\n", base_url=sim.url + "/api", database=tmp_path / "s.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    stop = Stop()
    assert schedule_cmd.serve(config, clock=FakeClock(at("2026-11-30 10:07"), stop), stop=stop, max_runs=2) == 0
    out = capsys.readouterr().out.splitlines()
    failures = [line for line in out if line.startswith("the sync due at")]
    assert failures == [
        "the sync due at 2026-11-30 10:15 UTC failed (exit 3): 2 stream(s) failed: metrics, lists",
        "the sync due at 2026-11-30 10:30 UTC failed (exit 3): 2 stream(s) failed: metrics, lists",
    ]
    assert "next sync at 2026-11-30 10:30 UTC" in out


SCHEDULE_KEY = "pk_schedule_0123456789abcdef"


def crashing_once(ticks: list[datetime]):
    """A sync that hits a bug (its message holding the key) on its first tick and does nothing after."""

    def sync(config: Config) -> None:
        ticks.append(config)
        if len(ticks) == 1:
            raise ZeroDivisionError(f"division by zero near {SCHEDULE_KEY}")

    return sync


def test_a_bug_in_one_scheduled_sync_is_one_line_and_the_schedule_goes_on(tmp_path: Path, monkeypatch, capsys) -> None:
    # It ended klx schedule ("internal error: ...", exit 1): systemd had to restart it for the next sync to run.
    config = schedule_config(tmp_path, "  type: basic\n  every: 15m\n")
    monkeypatch.setenv("KLAVIYO_API_KEY", SCHEDULE_KEY)
    stop, ticks = Stop(), []
    assert schedule_cmd.serve(config, clock=FakeClock(at("2026-11-30 10:07"), stop), stop=stop, sync=crashing_once(ticks), max_runs=2) == 0
    captured = capsys.readouterr()
    assert len(ticks) == 2
    assert captured.out.splitlines()[2:] == [
        "sync due at 2026-11-30 10:15 UTC starting",
        "the sync due at 2026-11-30 10:15 UTC failed (exit 1): internal error: ZeroDivisionError: division by zero near *** "
        "(run with --debug for the traceback)",
        "next sync at 2026-11-30 10:30 UTC",
        "sync due at 2026-11-30 10:30 UTC starting",
    ]
    assert captured.err == ""


def test_with_debug_a_bug_in_a_scheduled_sync_also_prints_its_traceback_masked(tmp_path: Path, monkeypatch, capsys) -> None:
    config = schedule_config(tmp_path, "  type: basic\n  every: 15m\n")
    monkeypatch.setenv("KLAVIYO_API_KEY", SCHEDULE_KEY)
    stop, ticks = Stop(), []
    assert schedule_cmd.serve(config, clock=FakeClock(at("2026-11-30 10:07"), stop), stop=stop, sync=crashing_once(ticks), max_runs=2,
                              debug=True) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("Traceback (most recent call last):\n")
    assert captured.err.endswith("ZeroDivisionError: division by zero near ***\n") and SCHEDULE_KEY not in captured.err
    assert "the sync due at 2026-11-30 10:15 UTC failed (exit 1): internal error: ZeroDivisionError: division by zero near ***" in captured.out.splitlines()
    assert len(ticks) == 2


def test_a_bug_in_a_scheduled_sync_is_recorded_as_a_failed_run_and_the_next_sync_runs(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    database = tmp_path / "s.duckdb"
    config = schedule_config(tmp_path, "  type: basic\n  every: 15m\n", base_url=sim.url, database=database)
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    from engine import run as run_module

    calls: list[str] = []
    real_run = run_module.StreamSync.run

    def crashes_first(self):
        calls.append(self.stream.name)
        if len(calls) == 1:
            raise ZeroDivisionError("division by zero")
        return real_run(self)

    monkeypatch.setattr(run_module.StreamSync, "run", crashes_first)
    stop = Stop()
    assert schedule_cmd.serve(config, clock=FakeClock(at("2026-11-30 10:07"), stop), stop=stop, max_runs=2) == 0
    out = capsys.readouterr().out.splitlines()
    assert "the sync due at 2026-11-30 10:15 UTC failed (exit 1): internal error: ZeroDivisionError: division by zero " \
           "(run with --debug for the traceback)" in out
    recorded = rows(database, "select run_status, count(*) as n from kl_klx_runs group by run_status order by run_status")
    assert [(r["run_status"], r["n"]) for r in recorded] == [("failed", 2), ("succeeded", 2)]  # a row per stream and run
    assert rows(database, "select count(*) as n from kl_rudder_metrics")[0]["n"] == len(sim.store.truth("metrics"))


def test_a_spec_made_invalid_between_ticks_fails_each_sync_until_fixed_and_the_schedule_goes_on(sim: Simulator, tmp_path: Path, monkeypatch,
                                                                                                capsys) -> None:
    # klx schedule reads config.yaml once (docs/scheduling.md); the spec it names is read again by every sync.
    spec = tmp_path / "spec.yaml"
    spec.write_text((ROOT / "specs" / "klaviyo.yaml").read_text())
    database = tmp_path / "s.duckdb"
    config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=sim.url, database=database, spec=spec)
    config.write_text(config.read_text() + "schedule:\n  type: basic\n  every: 15m\n")
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    stop = Stop()

    class SpecEditedAfterTheFirstSync(FakeClock):
        def wait_until(self, when: datetime) -> None:
            if len(self.waits) == 1:
                spec.write_text("api:\n  base_url: [\n")
            super().wait_until(when)

    assert schedule_cmd.serve(config, clock=SpecEditedAfterTheFirstSync(at("2026-11-30 10:07"), stop), stop=stop, max_runs=3) == 0
    failures = [line for line in capsys.readouterr().out.splitlines() if line.startswith("the sync due at")]
    assert [line.split(": ")[0] for line in failures] == ["the sync due at 2026-11-30 10:30 UTC failed (exit 2)",
                                                         "the sync due at 2026-11-30 10:45 UTC failed (exit 2)"]
    assert all(f"{spec}:" in line for line in failures), failures


def test_sigterm_during_a_sync_ends_it_at_its_last_commit_and_stops(tmp_path: Path, monkeypatch, capsys) -> None:
    config = schedule_config(tmp_path, "  type: basic\n  every: 15m\n")
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_test")
    stop = Stop()
    reached_after_signal = []

    def interrupted(config: Config) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        reached_after_signal.append(True)  # the handler raises before this line

    assert schedule_cmd.serve(config, clock=FakeClock(at("2026-11-30 10:07"), stop), stop=stop, sync=interrupted, max_runs=3) == 130
    out = capsys.readouterr().out.splitlines()
    assert reached_after_signal == []
    assert out[-2:] == [
        "sync interrupted: committed batches are kept, the rest was rolled back; the next sync resumes from there",
        "stopped by SIGTERM",
    ]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_second_signal_while_an_interrupted_scheduled_sync_winds_down_is_ignored(tmp_path: Path, monkeypatch, capsys) -> None:
    # systemd's SIGTERM then an operator's Ctrl-C: the second used to raise again inside the ending sync, cutting
    # its wind-down (the writes in flight, the summary, the klx_runs row) short.
    config = schedule_config(tmp_path, "  type: basic\n  every: 15m\n")
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_test")
    stop = Stop()
    wound_down = []

    def interrupted(config: Config) -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            os.kill(os.getpid(), signal.SIGINT)
            wound_down.append(True)

    assert schedule_cmd.serve(config, clock=FakeClock(at("2026-11-30 10:07"), stop), stop=stop, sync=interrupted, max_runs=3) == 130
    assert wound_down == [True]
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "sync interrupted: committed batches are kept, the rest was rolled back; the next sync resumes from there",
        "stopped by SIGTERM",
    ]


def test_second_lock_on_the_same_config_and_prefix_names_the_holder(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    with RunLock.for_config(config, "kl_"):
        with pytest.raises(LockedError) as refused:
            RunLock.for_config(config, "kl_").acquire()
        RunLock.for_config(config, "other_").acquire()  # another prefix is another lock
    assert str(refused.value).startswith(f"{config} (table prefix 'kl_') is already being synced by pid {os.getpid()} on ")
    assert refused.value.exit_code == 5
    RunLock.for_config(config, "kl_").acquire()  # released on exit


@pytest.mark.parametrize("how", READ_ONLY_WAYS)
def test_run_in_a_config_folder_it_cannot_write_exits_2_naming_the_folder(tmp_path: Path, monkeypatch, capsys, how: str) -> None:
    # systemd's User=klx with a root-owned /etc/klx: the lock file cannot be created beside the config.
    folder = tmp_path / "etc"
    folder.mkdir()
    config = schedule_config(folder, "  type: manual\n", database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_test")
    with read_only_folder(folder, how, monkeypatch):
        assert main(["run", str(config)]) == 2
    assert capsys.readouterr() == ("", (
        f"error: cannot create or open the lock file .config-kl_.yaml.kl_klx.lock in {folder}: Permission denied\n"
        f"  hint: klx keeps its lock beside the config: let the user klx runs as write in {folder} (and to .config-kl_.yaml.kl_klx.lock if it exists)\n"
    ))
    assert sorted(p.name for p in folder.iterdir()) == ["config-kl_.yaml"]


def test_schedule_refuses_a_config_folder_it_cannot_write_before_its_first_tick(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = schedule_config(folder, "  type: basic\n  every: 15m\n", database=tmp_path / "x.duckdb")
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_test")
    stop, ticks = Stop(), []
    with read_only_folder(folder, "simulated", monkeypatch), pytest.raises(ConfigError) as refused:
        schedule_cmd.serve(config, clock=FakeClock(at("2026-11-30 10:07"), stop), stop=stop, sync=ticks.append, max_runs=1)
    assert refused.value.message == f"cannot create or open the lock file .config-kl_.yaml.kl_klx.lock in {folder}: Permission denied"
    assert ticks == []


def test_run_exits_5_while_another_run_holds_the_lock(tmp_path: Path, monkeypatch, capsys) -> None:
    config = schedule_config(tmp_path, "  type: manual\n")
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_test")
    with RunLock.for_config(config, "kl_"):
        assert main(["run", str(config)]) == 5
    err = capsys.readouterr().err
    assert err.startswith(f"error: {config} (table prefix 'kl_') is already being synced by pid {os.getpid()} on ")
    assert err.endswith(f"hint: wait for that sync to finish or stop it; the lock is {tmp_path / '.config-kl_.yaml.kl_klx.lock'} and is released when its process exits\n")


def _locks_of(obj: object, depth: int = 4) -> list:
    """Every lock reachable from `obj`'s attributes (a threading.Event holds a Condition, which holds a Lock)."""
    import gc
    import threading

    lock_types = (type(threading.Lock()), type(threading.RLock()))
    found, seen, frontier = [], set(), [obj]
    for _ in range(depth):
        nxt = []
        for item in frontier:
            for ref in gc.get_referents(item):
                if id(ref) in seen or isinstance(ref, type):
                    continue
                seen.add(id(ref))
                if isinstance(ref, lock_types):
                    found.append(ref)
                else:
                    nxt.append(ref)
        frontier = nxt
    return found


def test_a_stop_asked_for_by_a_signal_handler_takes_no_lock_the_interrupted_thread_may_hold() -> None:
    # A signal handler runs on the main thread between two of its bytecodes, wherever it is: inside the scheduler's
    # wait, that could be where the wait holds the lock of the threading.Event it waits on, and the handler's
    # set() then waited for that lock forever (klx schedule hung until killed). The request must take no lock.
    import threading

    stop = Stop()
    held = _locks_of(stop)
    for lock in held:  # the interrupted thread holds every lock the Stop has
        lock.acquire()
    asker = threading.Thread(target=stop.request, args=("SIGTERM",), daemon=True)
    try:
        asker.start()
        asker.join(2)
        assert not asker.is_alive(), "request() waited for a lock the interrupted thread holds"
    finally:
        for lock in held:
            lock.release()
    asker.join(5)
    assert stop.requested and stop.signal == "SIGTERM"


def test_the_real_clock_s_wait_ends_soon_after_a_stop_is_asked_for() -> None:
    import threading
    import time as clock

    from engine.schedule import RealClock

    stop = Stop()
    real = RealClock(stop)
    threading.Timer(0.2, stop.request, args=("SIGINT",)).start()
    began = clock.monotonic()
    real.wait_until(real.now() + timedelta(hours=1))
    assert clock.monotonic() - began < 5  # an hour's wait, ended by the stop (within WAKE_SECONDS of it)
    assert stop.requested
