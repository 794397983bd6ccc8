"""Time slices of a cursor range: the windows a sliced stream reads, and how far their reading got.

A stream whose cursor declares `slice: <step>` reads [lower bound, run start) as windows of `step`, each
its own request sequence filtered `lower <= cursor < end`; the last window has no end, so records dated
after the run's start (Klaviyo holds future-dated events) are read as an unsliced read would.

Windows are read side by side, so they finish out of order. What a run has read of one partition is kept
as its cursor (everything before it is read) plus `covered`: ranges beyond the cursor already read in
full. The cursor only moves past what is complete below it; a rerun after a kill reads what is neither
below the cursor nor covered, so no window is skipped and none is read twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

MIN_STEP = timedelta(hours=1)  # a shorter step spends a request per window on mostly empty windows
FAR_PAST = datetime.min.replace(tzinfo=timezone.utc)

Window = tuple[datetime, datetime | None]  # [start, end); None: no end


def check_step(step: timedelta, reader: Any, operators: dict[str, str] | None) -> timedelta:
    """`cursor.slice`, validated: at least MIN_STEP, and the API has a less-than filter to end a window with."""
    if step < MIN_STEP:
        raise reader.fail("slice", f"{_show(step)} is shorter than {_show(MIN_STEP)}; each window costs at least one request")
    if operators is None or "lt" not in operators:
        raise reader.fail("slice", "needs a less-than filter to end each window: api.filter.operators has no 'lt'")
    return step


def windows(lower: datetime, until: datetime, step: timedelta, *, end: datetime | None = None,
            covered: list[tuple[datetime, datetime]] = (), lookback: timedelta = timedelta(0)) -> list[Window]:
    """The windows that read [lower, end) (no end: [lower, ...)), oldest first, leaving out `covered` ranges.

    Without `end` the last window is open, and windows of `step` stop at `until` (the run's start). A
    covered range read by an earlier run is re-read over its last `lookback`, as a cursor would be.
    """
    gaps: list[tuple[datetime, datetime | None]] = []
    at = lower
    for start, stop in sorted(covered):
        start, stop = max(start, at), stop - lookback
        if stop <= start:
            continue  # below where this read begins, or all of it within the lookback
        if end is not None and start >= end:
            break
        if start > at:
            gaps.append((at, start))
        at = stop
    if end is None or at < end:
        gaps.append((at, end))
    out: list[Window] = []
    for start, stop in gaps:
        limit = stop if stop is not None else until
        while start + step < limit:
            out.append((start, start + step))
            start += step
        out.append((start, stop))
    return out


@dataclass(slots=True)
class Coverage:
    """How far one partition's windows have been read: its cursor and the covered ranges beyond it.

    `saved`/`covered` are what the state held; `base` is where this run's reading counts from (the saved
    cursor, else the first window's start); `started` the run's start, past which no cursor goes.
    """

    saved: datetime | None
    base: datetime
    started: datetime
    covered: list[tuple[datetime, datetime]] = field(default_factory=list)
    read: dict[Any, tuple[datetime, datetime]] = field(default_factory=dict)  # a window's reader -> the range it read

    def progress(self, reader: Any, window: Window, newest: datetime | None) -> None:
        """A window read in cursor order has loaded everything before `newest`."""
        if newest is not None:
            self._mark(reader, window[0], min(newest, self.started))

    def finished(self, reader: Any, window: Window, newest: datetime | None) -> None:
        """A window was read to its end; an open one covers up to its newest record (or the run's start if empty)."""
        start, end = window
        if end is not None:
            self._mark(reader, start, end)
        else:
            self._mark(reader, start, min(newest, self.started) if newest is not None else self.started)

    def _mark(self, reader: Any, start: datetime, stop: datetime) -> None:
        stop = max(start, stop)
        before = self.read.get(reader)
        if before is None or before[1] < stop:
            self.read[reader] = (start, stop)

    def state(self) -> tuple[datetime | None, list[tuple[datetime, datetime]]]:
        """(cursor, covered ranges beyond it) to save: the cursor ends the range read without a gap from `base`."""
        merged: list[list[datetime]] = []
        for start, stop in sorted([*self.covered, *self.read.values()]):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], stop)
            else:
                merged.append([start, stop])
        cursor = self.saved
        for start, stop in merged:
            if start <= self.base <= stop:
                reached = min(stop, self.started)
                cursor = reached if cursor is None else max(cursor, reached)
        beyond = [(max(start, cursor), stop) if cursor else (start, stop) for start, stop in merged if cursor is None or stop > cursor]
        return cursor, [(start, stop) for start, stop in beyond if start < stop]


def parse_covered(value: Any) -> list[tuple[datetime, datetime]]:
    """Covered ranges as saved (state.py validated them): [[from, to], ...] in ISO."""
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in value or []]


def encode_covered(ranges: list[tuple[datetime, datetime]]) -> list[list[str]]:
    """Covered ranges as the state saves them."""
    return [[a.isoformat(), b.isoformat()] for a, b in ranges]


def _show(step: timedelta) -> str:
    seconds = int(step.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
