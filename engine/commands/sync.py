"""One sync as `klx run`, `klx demo` and each scheduled tick do it: under the config's lock, with live
progress, the final summary (always, also when the run fails), a row per stream in <prefix>klx_runs
and, on request, a JSON report."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, TextIO

from ..cli_output import print_failures, print_summary
from ..concurrency import Interrupt
from ..config import Config
from ..destinations import build_destination
from ..errors import ConfigError, KlxError
from ..history import RunRecord, record_of
from ..lock import RunLock
from ..progress import Progress, choose_view
from ..run import RunSummary, run


def sync_once(
    config: Config,
    *,
    log_format: str = "text",
    verbose: bool = False,
    report: Path | None = None,
    lock: bool = True,
    out: TextIO | None = None,
    err: TextIO | None = None,
    interrupt: Interrupt | None = None,
    **run_options: Any,
) -> RunSummary:
    """Run one sync; LockedError (before anything runs) if another process holds the config's lock. `interrupt` is
    the stop a caller's own signal handler asks for (klx schedule's); otherwise SIGINT and SIGTERM ask it here."""
    out, err = out or sys.stdout, err or sys.stderr
    if report is not None:
        check_report_path(report)
    guard = RunLock.for_config(config.path, config.destination.table_prefix) if lock else None
    if guard is not None:
        guard.acquire()
    try:
        with terminate_as_interrupt(interrupt or Interrupt()) as stop:
            return _sync(config, log_format=log_format, verbose=verbose, report=report, out=out, err=err, interrupt=stop, **run_options)
    finally:
        if guard is not None:
            guard.release()


@contextlib.contextmanager
def terminate_as_interrupt(interrupt: Interrupt) -> Iterator[Interrupt]:
    """While inside, SIGINT and SIGTERM ask `interrupt` to stop the sync (engine/concurrency.py: a KeyboardInterrupt
    where the run looks for it, so no `except` or finalizer can swallow it), and SIGTERM ends the sync as Ctrl-C
    does: at its last commit, with the summary and the klx_runs row, exit 130. systemd, Kubernetes, Airflow and
    `timeout` stop a process with SIGTERM, which by default kills it on the spot: no summary, no history row.
    After the first SIGINT or SIGTERM, later ones are ignored until the sync has ended: a second Ctrl-C raised
    while the streams wind down cut that short (the writes in flight lost their connection, the history row could
    go unwritten) and printed Python's "Exception ignored" traceback. A signal klx does not own is left alone: a
    SIGTERM handler already set (klx schedule installs its own), a SIGINT ignored by the shell (`klx run &`).
    Only on the main thread (the only one that can set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return
    owned = [sig for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL))
             if signal.getsignal(sig) is default]

    def on_signal(signum: int, frame: object) -> None:
        for sig in owned:  # one is enough: the sync is ending
            signal.signal(sig, signal.SIG_IGN)
        interrupt.request()

    previous = {sig: signal.signal(sig, on_signal) for sig in owned}
    try:
        yield interrupt
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _sync(config: Config, *, log_format: str, verbose: bool, report: Path | None, out: TextIO, err: TextIO, interrupt: Interrupt,
          **run_options: Any) -> RunSummary:
    view = choose_view(log_format, out, err, verbose=verbose)
    progress = Progress(view, verbose=verbose)
    run_id = str(uuid.uuid4())
    started = datetime.now(timezone.utc)
    status, error, summary = "failed", None, None
    view.start(progress)
    try:
        summary = run(config, events=progress, job_run_id=run_id, interrupt=interrupt, **run_options)
        status = "failed" if summary.failed else "succeeded"
        return summary
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted: committed batches are kept, the rest was rolled back"
        progress.stopped(KlxError(error))
        raise
    except KlxError as failure:
        error = str(failure).splitlines()[0]
        progress.stopped(failure)
        _name_the_stream(failure, progress)
        raise
    except Exception as failure:  # a bug, which cli.py reports: its message may hold anything, so only its type here
        progress.stopped(KlxError(f"stopped: {type(failure).__name__}"))
        raise
    finally:
        view.stop()
        record = record_of(progress, run_id=run_id, started_at=started, ended_at=datetime.now(timezone.utc), status=status, error=error)
        if record.streams:  # a run refused before planning (bad config or spec) did nothing to summarise
            print_summary(record, out, log_format, summary)
            if summary is not None:
                print_failures(summary, err, log_format)
            _keep(config, record, err)
        if report is not None:
            report.write_text(json.dumps(record.to_json(), indent=2) + "\n")


def _name_the_stream(failure: KlxError, progress: Progress) -> None:
    """A stream's error that stopped the run (a warehouse that no longer answers, a refused key) is printed last, on
    its own: it names its stream there, as a stream's failure in a run that went on does (cli_output.failure_line).
    Its text in the summary, the history and the report stays as it was."""
    text = str(failure).splitlines()[0]
    failed = [s.stream for s in progress.streams.values() if s.state == "failed" and s.error == text]
    if failure.where is None and len(failed) == 1 and f"stream {failed[0]}" not in text:
        failure.where = f"stream {failed[0]}"


def check_report_path(report: Path) -> None:
    """Refuse a --report file that cannot be written, before the sync rather than after it has committed."""
    if report.is_dir():
        raise ConfigError(f"--report {report}: is a folder; name a file in it, e.g. {report / 'run.json'}")
    if not report.parent.is_dir():
        raise ConfigError(f"--report {report}: folder {report.parent} does not exist")
    existed = report.exists()
    try:
        with open(report, "a"):  # appends nothing: an existing report stays as it is until the run replaces it
            pass
    except OSError as failure:
        raise ConfigError(f"--report {report}: cannot write it: {failure.strerror}") from failure
    if not existed:
        report.unlink(missing_ok=True)  # no empty report left behind should the run not get to write one


def _keep(config: Config, record: RunRecord, err: TextIO) -> None:
    """Append the run to <prefix>klx_runs; a warehouse that refuses is reported, not fatal (the run's own error wins)."""
    try:
        destination = build_destination(config.destination)
        try:
            destination.append_run(record.rows())
        finally:
            destination.close()
    except KlxError as failure:
        print(f"warning: run {record.run_id} not recorded in {config.destination.table_prefix}klx_runs: {failure}", file=err)


def parse_window(start: str | None, end: str | None, now: datetime | None = None) -> tuple[datetime, datetime] | None:
    """--start/--end as a UTC window [start, end); end defaults to now; None without --start."""
    if start is None:
        if end is not None:
            raise ConfigError("--end needs --start: a backfill re-reads [--start, --end)")
        return None
    window = (_moment(start, "--start"), _moment(end, "--end") if end is not None else (now or datetime.now(timezone.utc)))
    if window[0] >= window[1]:
        raise ConfigError(f"--start {start} is not before --end {end or 'now'}")
    return window


def _moment(text: str, flag: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not a date (use YYYY-MM-DD or an ISO-8601 datetime)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
