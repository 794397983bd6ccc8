"""What a run tells an observer while it works (progress views, run history); the engine never waits on it."""

from __future__ import annotations

from typing import Any, Protocol, Sequence


class RunEvents(Protocol):
    """Called by run.py and http.py as a sync goes; calls may come from a page-fetching thread."""

    def planned(self, streams: Sequence[tuple[str, str]]) -> None:
        """The run's streams in order, as (stream, mode): all queued."""

    def started(self, stream: str) -> None:
        """`stream` began reading."""

    def page(self, stream: str, records: int) -> None:
        """A page of `records` was read for `stream`."""

    def request(self, stream: str, url: str, status: int | None, seconds: float) -> None:
        """One HTTP attempt ended: its redacted URL, status (None: no answer) and duration."""

    def retry(self, stream: str, why: str, wait: float) -> None:
        """An attempt will be repeated after `wait` seconds because of `why` (e.g. "HTTP 429")."""

    def throttled(self, stream: str, seconds: float) -> None:
        """`seconds` were spent waiting for the endpoint's rate budget before a request."""

    def finished(self, summary: Any) -> None:
        """A stream ended (run.StreamSummary; done, or failed when it carries an error: interrupted when that error
        is the run's stop, summary.interrupted)."""


class NoEvents(RunEvents):
    """The observer of a run nobody watches: every event is ignored (the protocol's bodies do nothing)."""


NO_EVENTS = NoEvents()
