"""When syncs run: the Basic grid and CRON times, and a loop that runs one sync per due time until stopped."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

from .config import ScheduleConfig
from .errors import ConfigError


def next_run(schedule: ScheduleConfig, after: datetime) -> datetime:
    """The first run time strictly after `after` (aware, UTC)."""
    after = after.astimezone(timezone.utc)
    if schedule.type == "basic":
        assert schedule.every is not None and schedule.start_time is not None
        # Every Basic interval divides a day, so any day's start_time anchors the same grid.
        anchor = datetime.combine(after.date(), schedule.start_time, tzinfo=timezone.utc)
        steps = (after - anchor) // schedule.every + 1
        return anchor + steps * schedule.every
    if schedule.type == "cron":
        from croniter import croniter

        return croniter(schedule.cron, after).get_next(datetime).astimezone(timezone.utc)
    raise ConfigError(
        "schedule.type is manual, so klx schedule has nothing to run",
        where=schedule.where,
        hint="run `klx run CONFIG` yourself (or from cron / Airflow), or set schedule.type to basic or cron",
    )


def next_runs(schedule: ScheduleConfig, after: datetime, count: int) -> list[datetime]:
    """The next `count` run times after `after`."""
    times: list[datetime] = []
    for _ in range(count):
        after = next_run(schedule, after)
        times.append(after)
    return times


class Stop:
    """A stop request (SIGINT/SIGTERM) that a waiting scheduler sees within WAKE_SECONDS.

    Asked for from a signal handler, which runs on the main thread between two of its bytecodes, wherever it is:
    request() only assigns, taking no lock. (A threading.Event's set() takes the lock its wait() holds as it
    begins and ends waiting: a signal landing there left the handler waiting on its own thread's lock, and klx
    schedule hung until killed.)"""

    def __init__(self) -> None:
        self.requested = False
        self.signal: str | None = None

    def request(self, name: str) -> None:
        """Ask the loop to stop: it ends its wait, or after the sync in progress is interrupted."""
        self.signal = name
        self.requested = True


# Seconds at most between two looks of a waiting scheduler at a stop request.
WAKE_SECONDS = 0.2


class RealClock:
    """Wall-clock time, and a wait that a stop request ends early."""

    def __init__(self, stop: Stop) -> None:
        self.stop = stop

    def now(self) -> datetime:
        """The current time, UTC."""
        return datetime.now(timezone.utc)

    def wait_until(self, when: datetime) -> None:
        """Sleep until `when` or a stop; re-reads the clock as it goes, so a suspended machine catches up."""
        while not self.stop.requested:
            left = (when - self.now()).total_seconds()
            if left <= 0:
                return
            time.sleep(min(left, WAKE_SECONDS))


class Scheduler:
    """Runs `sync` at each due time; a run still going when the next is due makes that one skipped, and says so."""

    def __init__(
        self,
        schedule: ScheduleConfig,
        sync: Callable[[datetime], None],
        *,
        clock: "RealClock",
        stop: Stop,
        say: Callable[[str], None] = print,
    ) -> None:
        self.schedule, self.sync, self.clock, self.stop, self.say = schedule, sync, clock, stop, say

    def serve(self, *, run_now: bool = False, max_runs: int | None = None) -> int:
        """Loop until stopped (or `max_runs` syncs, for tests); returns how many syncs started."""
        started = 0
        due = self.clock.now() if run_now else next_run(self.schedule, self.clock.now())
        while not self.stop.requested and (max_runs is None or started < max_runs):
            self.say(f"next sync at {show_time(due)}")
            self.clock.wait_until(due)
            if self.stop.requested:
                break
            started += 1
            self.sync(due)
            finished = self.clock.now()
            upcoming = next_run(self.schedule, due)
            missed = []
            while upcoming <= finished:
                missed.append(upcoming)
                upcoming = next_run(self.schedule, upcoming)
            if missed:
                times = ", ".join(show_time(t) for t in missed[:3]) + (f" and {len(missed) - 3} more" if len(missed) > 3 else "")
                self.say(f"skipped {len(missed)} sync(s) due at {times}: the sync started at {show_time(due)} was still running")
            due = upcoming
        if self.stop.requested:
            self.say(f"stopped by {self.stop.signal}")
        return started


def show_time(moment: datetime) -> str:
    """A run time as printed: minutes, UTC."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
