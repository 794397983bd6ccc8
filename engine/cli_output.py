"""The run summary as printed on the terminal."""

from __future__ import annotations

import logging
import sys

from .errors import clean
from .run import RunSummary, StreamSummary

log = logging.getLogger("klx.summary")
MAX_LINE = 500  # characters of one failed stream's reason


class SummaryPrinter:
    """Prints each stream's line as it finishes (the header before the first one), then the total and failures."""

    def __init__(self) -> None:
        self.started = False

    def stream(self, s: StreamSummary) -> None:
        """One stream's summary line; a failed stream or rejected records are noted after the figures."""
        if not self.started:
            print(f"{'stream':<20} {'mode':<13} {'events':>9} {'rows':>9} {'pages':>7} {'seconds':>8}")
            self.started = True
        notes = (["FAILED"] if s.failed else []) + ([f"{s.rejected} rejected"] if s.rejected else [])
        note = f"  {', '.join(notes)}" if notes else ""
        print(f"{s.stream:<20} {s.mode:<13} {s.events:>9} {s.rows:>9} {s.pages:>7} {s.seconds:>8.2f}{note}", flush=True)

    def total(self, summary: RunSummary) -> None:
        """The run's total line and its rate; then one line on stderr per failed stream, saying why."""
        seconds = sum(s.seconds for s in summary.streams)
        rows = sum(s.rows for s in summary.streams)
        pages = sum(s.pages for s in summary.streams)
        print(f"{'total':<20} {'':<13} {summary.events:>9} {rows:>9} {pages:>7} {seconds:>8.2f}")
        rate = summary.events / seconds if seconds else 0.0
        counts = [
            f"{n} {what}"
            for n, what in ((len(summary.failed), "streams failed"), (summary.rejected, "records rejected"), (len(summary.warnings), "warnings"))
            if n
        ]
        tail = f"; {', '.join(counts)}" if counts else ""
        print(f"run {summary.job_run_id}: {summary.events} events in {seconds:.1f}s ({rate:,.0f} events/s){tail}", flush=True)
        for s in summary.failed:
            # Shown only with --debug (it turns the klx loggers to DEBUG); the formatter masks and scrubs it.
            log.debug("stream %s failed", s.stream, exc_info=(type(s.error), s.error, s.error.__traceback__))
            print(failure_line(s), file=sys.stderr)


def failure_line(s: StreamSummary) -> str:
    """`error: stream NAME failed: why (hint: what to do)` on one line, without control characters."""
    err = s.error
    text = f"{err.where}: {err.message}" if err.where else err.message
    if err.hint:
        text += f" (hint: {err.hint})"
    return f"error: stream {s.stream} failed: {clean(text, MAX_LINE)}"
