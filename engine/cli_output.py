"""The run summary as printed at the end of every run, and the run list of `klx runs`."""

from __future__ import annotations

import logging
from typing import TextIO

from .errors import HINT_CHARS, clean, json_error, json_line
from .history import RunRecord
from .run import RunSummary, StreamSummary

log = logging.getLogger("klx.summary")
MAX_LINE = 500  # characters of one failed stream's reason
_HEADER = (
    f"{'stream':<20} {'mode':<13} {'status':<11} {'events':>9} {'rows':>9} {'inserted':>9} {'updated':>9} "
    f"{'pages':>7} {'requests':>8} {'retries':>7} {'429s':>5} {'waited':>7} {'seconds':>8}"
)


def print_summary(record: RunRecord, out: TextIO, log_format: str = "text", summary: RunSummary | None = None) -> None:
    """The final summary: per stream and total, rows inserted vs updated, columns added; JSON with --log-format json."""
    if log_format == "json":
        print(json_line("summary", **record.to_json()), file=out, flush=True)
        return
    print(_HEADER, file=out)
    for s in record.streams:
        note = f"  {s.rejected} rejected" if s.rejected else ""
        print(
            f"{s.stream:<20} {s.mode:<13} {s.status:<11} {s.records:>9} {s.rows:>9} {s.inserted:>9} {s.updated:>9} "
            f"{s.pages:>7} {s.requests:>8} {s.retries:>7} {s.http_429:>5} {s.waited_seconds:>6.1f}s {s.seconds:>8.2f}{note}",
            file=out,
        )
    streams = record.streams
    # The run's own duration: streams run side by side, so their seconds add up to more than the run took.
    seconds = max((record.ended_at - record.started_at).total_seconds(), 0.0)
    print(
        f"{'total':<20} {'':<13} {'':<11} {record.records:>9} {sum(s.rows for s in streams):>9} {sum(s.inserted for s in streams):>9} "
        f"{sum(s.updated for s in streams):>9} {sum(s.pages for s in streams):>7} {sum(s.requests for s in streams):>8} "
        f"{sum(s.retries for s in streams):>7} {sum(s.http_429 for s in streams):>5} {sum(s.waited_seconds for s in streams):>6.1f}s {seconds:>8.2f}",
        file=out,
    )
    rate = record.records / seconds if seconds else 0.0
    # "1 stream failed, 1 stream interrupted, 2 streams not started": every stream that did not end done
    ended = [(sum(s.status == status for s in streams), "stream", f" {status.replace('_', ' ')}")
             for status in ("failed", "interrupted", "not_started")]
    warnings = len(summary.warnings) if summary is not None else 0
    counts = [
        f"{_count(n, noun)}{what}"
        for n, noun, what in (*ended, (sum(s.rejected for s in streams), "record", " rejected"), (warnings, "warning", ""))
        if n
    ]
    tail = f"; {', '.join(counts)}" if counts else ""
    print(f"run {record.run_id} {record.status}: {_count(record.records, 'event')} in {seconds:.1f}s ({rate:,.0f} events/s){tail}", file=out)
    for s in streams:
        if s.columns_added:
            print(f"  {s.stream}: columns added: {', '.join(s.columns_added)}", file=out)
    out.flush()


def _count(n: int, noun: str) -> str:
    """'1 stream', '2 streams'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def failure_line(s: StreamSummary) -> str:
    """`error: stream NAME failed: why (hint: what to do)` on one line, without control characters."""
    err = s.error
    text = f"{err.where}: {err.message}" if err.where else err.message
    text = clean(text.removeprefix(f"stream {s.stream}: "), MAX_LINE)  # said once: some errors name their stream first
    # The hint whole (KlxError cleaned it): klx's own words, often a statement to copy, which a cut would spoil.
    hint = f" (hint: {clean(err.hint, HINT_CHARS)})" if err.hint else ""
    return f"error: stream {s.stream} failed: {text}{hint}"


def print_failures(summary: RunSummary, err: TextIO, log_format: str = "text") -> None:
    """One line per failed stream, saying why (a JSON object with --log-format json); with --debug its traceback first."""
    for s in summary.failed:
        # Shown only with --debug (it turns the klx loggers to DEBUG); the formatter masks and scrubs it.
        log.debug("stream %s failed", s.stream, exc_info=(type(s.error), s.error, s.error.__traceback__))
        if log_format == "json":
            print(json_error("stream error", s.error, stream=s.stream), file=err)
        else:
            print(failure_line(s), file=err)


def print_runs(records: list[RunRecord], out: TextIO) -> None:
    """`klx runs`: one line per run, newest first, then each stream that did not end done: failed or interrupted
    with its error, not_started."""
    print(f"{'run_id':<36} {'started (UTC)':<19} {'seconds':>8} {'status':<11} {'streams':>7} {'events':>9} {'rows':>9} {'requests':>8} {'429s':>5}", file=out)
    for r in records:
        seconds = (r.ended_at - r.started_at).total_seconds()
        print(
            f"{r.run_id:<36} {r.started_at:%Y-%m-%d %H:%M:%S} {seconds:>8.1f} {r.status:<11} {len(r.streams):>7} {r.records:>9} "
            f"{sum(s.rows for s in r.streams):>9} {sum(s.requests for s in r.streams):>8} {sum(s.http_429 for s in r.streams):>5}",
            file=out,
        )
        for s in r.streams:
            if s.error:
                print(f"  {s.stream} {s.status}: {s.error}", file=out)
            elif s.status == "not_started":
                print(f"  {s.stream} not_started: the run stopped before it started", file=out)
