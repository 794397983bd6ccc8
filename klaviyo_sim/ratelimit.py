"""Klaviyo's fixed-window burst (1 s) and steady (1 min) limits per endpoint (API-NOTES §1.7)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# The extra bucket counted when additional-fields[profile] asks for predictive_analytics.
PREDICTIVE = ("predictive_analytics", 10, 150)


@dataclass(slots=True)
class _Window:
    start: float
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """Outcome for one request: allowed, or the seconds to wait; plus RateLimit-* header values."""

    allowed: bool
    retry_after: int
    limit: int
    remaining: int
    reset: int


class RateLimiter:
    """Counts every request; refuses only when `enforce` is on (off by default so tests stay fast)."""

    def __init__(self, enforce: bool = False, clock: Callable[[], float] = time.monotonic, fraction: float = 1.0) -> None:
        self.enforce, self.clock = enforce, clock
        # Every limit cut to this share (at least 1), as when other apps share the account's quota.
        self.fraction = fraction
        self._windows: dict[tuple[str, int], _Window] = {}
        self._lock = threading.Lock()
        self.refused = 0  # 429s answered so far (benchmarks and tests read it)
        self.counted: dict[str, int] = {}  # requests counted (not refused) per bucket
        self.tiers: dict[str, tuple[int, int]] = {}  # each bucket's (burst, steady) after the cut

    def limits(self, burst: int, steady: int) -> tuple[int, int]:
        """A tier's (burst/s, steady/min) after the cut."""
        return max(1, int(burst * self.fraction)), max(1, int(steady * self.fraction))

    def _window(self, bucket: str, length: int, now: float) -> _Window:
        win = self._windows.get((bucket, length))
        if win is None or now - win.start >= length:
            win = self._windows[(bucket, length)] = _Window(now, 0)
        return win

    def hit(self, buckets: list[tuple[str, int, int]]) -> Verdict:
        """Count one request against each (name, burst/s, steady/min) bucket."""
        with self._lock:
            now = self.clock()
            wait = 0.0
            pairs = []
            for name, burst, steady in buckets:
                burst, steady = self.tiers[name] = self.limits(burst, steady)
                for length, limit in ((1, burst), (60, steady)):
                    win = self._window(name, length, now)
                    pairs.append((win, limit, length))
                    if win.count >= limit:
                        wait = max(wait, win.start + length - now)
            if wait > 0 and self.enforce:
                self.refused += 1
                return Verdict(allowed=False, retry_after=max(1, math.ceil(wait)), limit=0, remaining=0, reset=0)
            for win, _, _ in pairs:
                win.count += 1
            for name, _, _ in buckets:
                self.counted[name] = self.counted.get(name, 0) + 1
            # Headers describe the endpoint's steady window (API-NOTES §1.7).
            steady_win, steady_limit, _ = pairs[1]
            reset = max(0, math.ceil(steady_win.start + 60 - now))
            return Verdict(allowed=True, retry_after=0, limit=steady_limit,
                           remaining=max(0, steady_limit - steady_win.count), reset=reset)
