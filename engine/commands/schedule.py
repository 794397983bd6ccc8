"""`klx schedule`: sync per the config's schedule until SIGINT/SIGTERM; `--next N` lists the coming run times."""

from __future__ import annotations

import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Callable

from ..concurrency import Interrupt
from ..config import Config
from . import config_without_secrets
from ..errors import KlxError, bug_text, json_line, traceback_text
from ..lock import LockedError, RunLock
from ..plan import load_spec
from ..schedule import RealClock, Scheduler, Stop, show_time, next_run, next_runs
from .sync import sync_once


def print_next(config_path: Path, count: int, now: datetime | None = None) -> int:
    """Print the next `count` run times of the config's schedule."""
    config = config_without_secrets(config_path)
    clock_now = now or RealClock(Stop()).now()
    next_run(config.schedule, clock_now)  # a manual schedule refuses here
    for moment in next_runs(config.schedule, clock_now, count):
        print(show_time(moment))
    return 0


def serve(config_path: Path, *, run_now: bool = False, clock: RealClock | None = None, stop: Stop | None = None,
          sync: Callable[[Config], object] | None = None, max_runs: int | None = None, log_format: str = "text", verbose: bool = False,
          debug: bool = False) -> int:
    """Run syncs on the schedule until stopped. Exit 0 when stopped between syncs, 130 when a sync was interrupted.

    A sync that fails, on a KlxError or on a bug, is one line and the schedule goes on: left running under systemd,
    it is not for one sync's error to stop the next ones (nor for systemd to restart it to carry on)."""
    stop = stop or Stop()
    clock = clock or RealClock(stop)
    next_run(config_without_secrets(config_path).schedule, clock.now())  # a manual schedule refuses first
    config = Config.from_yaml(config_path)
    load_spec(config)  # refuse a bad spec or resource now, not at every tick
    RunLock.for_config(config.path, config.destination.table_prefix).check()  # likewise a folder the lock cannot go in
    interrupt = Interrupt()  # the stop a signal asks of the sync in progress; once asked, no sync follows
    sync = sync or (lambda c: sync_once(c, log_format=log_format, verbose=verbose, interrupt=interrupt))
    interrupted = False
    syncing = False
    winding_down = False  # a sync was interrupted and is ending: a second signal must not cut that short

    def say(text: str) -> None:  # the schedule's own lines: JSON objects too with --log-format json
        print(json_line("schedule", message=text) if log_format == "json" else text, flush=True)

    def on_signal(signum: int, frame: object) -> None:
        nonlocal winding_down
        stop.request(stop.signal or signal.Signals(signum).name)
        if syncing and not winding_down:  # end the sync at its last commit: the open batch rolls back
            winding_down = True
            interrupt.request()

    def tick(due: datetime) -> None:
        nonlocal syncing, interrupted
        say(f"sync due at {show_time(due)} starting")
        syncing = True
        try:
            summary = sync(config)
            failed = [s.stream for s in getattr(summary, "failed", ())]
            if failed:  # the run ended, but not every stream synced: said like a run that raised, with its exit code
                say(f"the sync due at {show_time(due)} failed (exit {summary.exit_code}): "  # type: ignore[union-attr]
                    f"{len(failed)} stream(s) failed: {', '.join(failed)}")
        except LockedError as err:
            say(f"skipped the sync due at {show_time(due)}: {err.message}")
        except KlxError as err:
            say(f"the sync due at {show_time(due)} failed (exit {err.exit_code}): {err}")
        except Exception as err:  # a bug: sync_once recorded the run as failed when it got as far as planning one
            if debug:
                print(traceback_text(), file=sys.stderr, flush=True)
            hint = "" if debug else " (run with --debug for the traceback)"
            say(f"the sync due at {show_time(due)} failed (exit 1): internal error: {bug_text(err)}{hint}")
        except KeyboardInterrupt:
            interrupted = True
            stop.request(stop.signal or "SIGINT")
            say("sync interrupted: committed batches are kept, the rest was rolled back; the next sync resumes from there")
        finally:
            syncing = False

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        say(f"klx schedule: {_describe(config)} for {config_path}; stop with Ctrl-C or SIGTERM")
        Scheduler(config.schedule, tick, clock=clock, stop=stop, say=say).serve(run_now=run_now, max_runs=max_runs)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 130 if interrupted else 0


def _describe(config: Config) -> str:
    s = config.schedule
    if s.type == "cron":
        return f"cron {s.cron!r} (UTC)"
    assert s.every is not None and s.start_time is not None
    minutes = int(s.every.total_seconds() // 60)
    every = f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
    return f"every {every} from {s.start_time:%H:%M} UTC"
