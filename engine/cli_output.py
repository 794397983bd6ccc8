"""The run summary as printed on the terminal."""

from __future__ import annotations

from .run import RunSummary, StreamSummary


class SummaryPrinter:
    """Prints each stream's line as it finishes (the header before the first one), then the total."""

    def __init__(self) -> None:
        self.started = False

    def stream(self, s: StreamSummary) -> None:
        """One stream's summary line."""
        if not self.started:
            print(f"{'stream':<20} {'mode':<13} {'events':>9} {'rows':>9} {'pages':>7} {'seconds':>8}")
            self.started = True
        print(f"{s.stream:<20} {s.mode:<13} {s.events:>9} {s.rows:>9} {s.pages:>7} {s.seconds:>8.2f}", flush=True)

    def total(self, summary: RunSummary) -> None:
        """The run's total line and its rate."""
        seconds = sum(s.seconds for s in summary.streams)
        rows = sum(s.rows for s in summary.streams)
        pages = sum(s.pages for s in summary.streams)
        print(f"{'total':<20} {'':<13} {summary.events:>9} {rows:>9} {pages:>7} {seconds:>8.2f}")
        rate = summary.events / seconds if seconds else 0.0
        print(f"run {summary.job_run_id}: {summary.events} events in {seconds:.1f}s ({rate:,.0f} events/s)")
