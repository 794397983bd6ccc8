"""Live progress of a run: per-stream counters fed by RunEvents, drawn on a terminal, logged off one."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence, TextIO

from .errors import log_time

log = logging.getLogger("klx.progress")
HEARTBEAT_SECONDS = 10.0  # off a terminal, each running stream is logged at least this often
REDRAW_SECONDS = 0.5


@dataclass(slots=True)
class StreamProgress:
    """One stream's counters as the run goes."""

    stream: str
    mode: str
    # queued | running, then how it ended: done | failed (on its own error) | interrupted (cut short by the run
    # stopping: Ctrl-C, SIGTERM, another stream's error that stops the run) | not_started (the run stopped before it)
    state: str = "queued"
    records: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    http_429: int = 0
    waited: float = 0.0  # seconds waiting on rate limits: the endpoint budget and 429 Retry-After
    began: float | None = None
    ended: float | None = None
    error: str | None = None
    summary: Any = None  # run.StreamSummary once the stream ended

    def seconds(self, now: float) -> float:
        """Seconds the stream has been (or was) running."""
        if self.began is None:
            return 0.0
        return (self.ended if self.ended is not None else now) - self.began

    def rate(self, now: float) -> float:
        """Records per second so far."""
        seconds = self.seconds(now)
        return self.records / seconds if seconds > 0 else 0.0


class Progress:
    """Implements engine.events.RunEvents: keeps per-stream counters and tells its view."""

    def __init__(self, view: "View | None" = None, *, clock: Callable[[], float] = time.monotonic, verbose: bool = False) -> None:
        self.view = view or View()
        self.clock = clock
        self.verbose = verbose
        self.streams: dict[str, StreamProgress] = {}
        self.current: str | None = None
        self.lock = threading.Lock()

    # RunEvents
    def planned(self, streams: Sequence[tuple[str, str]]) -> None:
        """Every stream of the run starts queued."""
        with self.lock:
            for name, mode in streams:
                self.streams.setdefault(name, StreamProgress(stream=name, mode=mode))
        self.view.planned(self)

    def started(self, stream: str) -> None:
        """`stream` is running."""
        with self.lock:
            s = self.streams.setdefault(stream, StreamProgress(stream=stream, mode=""))
            s.state, s.began, self.current = "running", self.clock(), stream
        self.view.started(self, s)

    def page(self, stream: str, records: int) -> None:
        """Count a page and its records."""
        with self.lock:
            s = self._of(stream)
            s.pages += 1
            s.records += records

    def request(self, stream: str, url: str, status: int | None, seconds: float) -> None:
        """Count a request; with -v it is logged."""
        with self.lock:
            s = self._of(stream)
            s.requests += 1
            s.http_429 += status == 429
        if self.verbose:
            self.view.request(s, url, status, seconds)

    def retry(self, stream: str, why: str, wait: float) -> None:
        """Count a retry; the wait counts as rate-limit time when the API said 429."""
        with self.lock:
            s = self._of(stream)
            s.retries += 1
            if why == "HTTP 429":
                s.waited += wait

    def throttled(self, stream: str, seconds: float) -> None:
        """Time spent waiting for the endpoint's rate budget."""
        if seconds > 0:
            with self.lock:
                self._of(stream).waited += seconds

    def finished(self, summary: Any) -> None:
        """A stream ended: done, failed (its summary carries the error) or interrupted (the error is the run's stop)."""
        error = getattr(summary, "error", None)
        with self.lock:
            s = self._of(summary.stream)
            s.summary, s.ended = summary, self.clock()
            s.state = "done" if error is None else "interrupted" if getattr(summary, "interrupted", False) else "failed"
            s.error = str(error).splitlines()[0] if error is not None else None
            if self.current == summary.stream:
                self.current = None
        self.view.finished(self, s)

    def stopped(self, error: BaseException) -> None:
        """The run stopped on `error`: a stream still running was interrupted by it, a queued one was not started."""
        with self.lock:
            stopped = [s for s in self.streams.values() if s.state in ("running", "queued")]
            for s in stopped:
                if s.state == "running":
                    s.state, s.ended, s.error = "interrupted", self.clock(), str(error).splitlines()[0]
                else:
                    s.state = "not_started"
            self.current = None
        for s in stopped:
            self.view.finished(self, s)

    def _of(self, stream: str) -> StreamProgress:
        # Every request names the stream whose sync sends it, a child reading its parent's pages included
        # (run.StreamSync._get): it counts there.
        found = self.streams.get(stream)
        return found or self.streams.setdefault(stream, StreamProgress(stream=stream, mode=""))

    def snapshot(self) -> list[StreamProgress]:
        """The streams in run order."""
        with self.lock:
            return list(self.streams.values())


class View:
    """Shows nothing; the base of the views below."""

    def planned(self, progress: Progress) -> None:
        """The run's streams are known."""

    def started(self, progress: Progress, s: StreamProgress) -> None:
        """A stream started."""

    def finished(self, progress: Progress, s: StreamProgress) -> None:
        """A stream ended."""

    def request(self, s: StreamProgress, url: str, status: int | None, seconds: float) -> None:
        """One request (only with -v)."""

    def start(self, progress: Progress) -> None:
        """Begin drawing or logging in the background."""

    def stop(self) -> None:
        """Stop the background work; the view's last output stays."""


def _utc(now: Callable[[], datetime]) -> str:
    return log_time(now())


class LogView(View):
    """Off a terminal: a timestamped line per running stream every 10 s, on stderr.

    Starts and ends are not logged: the final summary on stdout says how each stream ended, and stderr
    stays the error's alone for a run shorter than the heartbeat.
    """

    def __init__(self, out: TextIO, *, wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc), every: float = HEARTBEAT_SECONDS) -> None:
        self.out, self.wall, self.every = out, wall, every
        self.progress: Progress | None = None
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def emit(self, event: str, s: StreamProgress | None, progress: Progress | None, **extra: Any) -> None:
        """Write one log line."""
        text = f"{_utc(self.wall)} {event:<9}"
        if s is not None:
            now = progress.clock() if progress else 0.0
            text += (
                f" {s.stream:<20} {s.records:>9,} records {s.pages:>6,} pages {s.rate(now):>8,.0f} rec/s"
                f" waited {s.waited:>6.1f}s retries {s.retries}"
            )
        for key, value in extra.items():
            text += f" {key}={value}"
        print(text, file=self.out, flush=True)


    def request(self, s: StreamProgress, url: str, status: int | None, seconds: float) -> None:
        """-v in text: http.py's own log line (klx.http, INFO) already shows each request."""

    def heartbeat(self, progress: Progress) -> None:
        """One line per running stream."""
        for s in progress.snapshot():
            if s.state == "running":
                self.emit("running", s, progress)

    def start(self, progress: Progress) -> None:
        """Heartbeat every `every` seconds in a daemon thread."""
        self.progress = progress

        def beat() -> None:
            while not self.stopped.wait(self.every):
                self.heartbeat(progress)

        self.thread = threading.Thread(target=beat, name="klx-progress", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """End the heartbeat."""
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()


class JsonView(LogView):
    """--log-format json: one JSON object a line on stdout: each stream's start and end, the heartbeat, the summary."""

    def started(self, progress: Progress, s: StreamProgress) -> None:
        """Log the start."""
        self.emit("started", s, progress)

    def emit(self, event: str, s: StreamProgress | None, progress: Progress | None, **extra: Any) -> None:
        """Write one JSON line."""
        line: dict[str, Any] = {"ts": _utc(self.wall), "event": event}
        if s is not None:
            now = progress.clock() if progress else 0.0
            line.update(
                stream=s.stream, mode=s.mode, state=s.state, records=s.records, pages=s.pages, requests=s.requests,
                retries=s.retries, http_429=s.http_429, waited_seconds=round(s.waited, 3), records_per_second=round(s.rate(now), 1),
                seconds=round(s.seconds(now), 3),
            )
        line.update(extra)
        print(json.dumps(line), file=self.out, flush=True)

    def finished(self, progress: Progress, s: StreamProgress) -> None:
        """Log the end as its state (done, failed, interrupted, not_started), with the error when it has one."""
        self.emit(s.state, s, progress, **({"error": s.error} if s.error else {}))

    def request(self, s: StreamProgress, url: str, status: int | None, seconds: float) -> None:
        """Log the request (-v)."""
        self.emit("request", None, None, stream=s.stream, url=url, status=status, seconds=round(seconds, 3))


class LiveView(View):
    """On a terminal: a per-stream table redrawn in place."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lines = 0
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def draw(self, progress: Progress) -> None:
        """Redraw the table over the previous one."""
        now = progress.clock()
        rows = [f"{'stream':<20} {'state':<11} {'records':>10} {'pages':>7} {'rec/s':>8} {'waited':>8} {'retries':>7} {'seconds':>8}"]
        for s in progress.snapshot():
            rows.append(
                f"{s.stream:<20} {s.state:<11} {s.records:>10,} {s.pages:>7,} {s.rate(now):>8,.0f} {s.waited:>7.1f}s {s.retries:>7} {s.seconds(now):>8.1f}"
            )
        with self.lock:
            up = f"\x1b[{self.lines}F" if self.lines else ""
            self.out.write(up + "".join(f"\x1b[2K{row}\n" for row in rows))
            self.out.flush()
            self.lines = len(rows)

    def planned(self, progress: Progress) -> None:
        """First draw."""
        self.draw(progress)

    def started(self, progress: Progress, s: StreamProgress) -> None:
        """Redraw."""
        self.draw(progress)

    def finished(self, progress: Progress, s: StreamProgress) -> None:
        """Redraw."""
        self.draw(progress)

    def request(self, s: StreamProgress, url: str, status: int | None, seconds: float) -> None:
        """Never called: -v chooses LogView, whose lines do not fight a redrawn table."""

    def start(self, progress: Progress) -> None:
        """Redraw a few times a second."""

        def redraw() -> None:
            while not self.stopped.wait(REDRAW_SECONDS):
                self.draw(progress)

        self.thread = threading.Thread(target=redraw, name="klx-live", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop redrawing; erase the table so the final summary replaces it."""
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()
        with self.lock:
            if self.lines:
                self.out.write(f"\x1b[{self.lines}F\x1b[0J")
                self.out.flush()
                self.lines = 0


def choose_view(log_format: str, out: TextIO, err: TextIO, *, verbose: bool = False) -> View:
    """JSON lines for orchestrators; a live table on a terminal (log lines with -v); timestamped lines on stderr otherwise."""
    if log_format == "json":
        return JsonView(out)
    if out.isatty() and not verbose:
        return LiveView(out)
    return LogView(err)
