"""Injected failures, reproducible from a seed: 5xx bodies, resets, cut-off bodies, slow replies."""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass

KINDS = ("500", "502", "503", "reset", "truncated", "slow")


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultConfig:
    """`rate` of /api requests fail with a kind drawn from `kinds`; `slow_seconds` for the slow kind."""

    rate: float = 0.0
    kinds: tuple[str, ...] = KINDS
    seed: int = 0
    slow_seconds: float = 2.0

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown or not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"bad fault config: rate must be in [0, 1], kinds among {', '.join(KINDS)}")


class Faults:
    """Draws the fault (or None) for each request in arrival order; queued faults go first."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        """Replace the config and restart the seeded draw sequence."""
        self.config = config
        self._rng = random.Random(config.seed)
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()

    def queue(self, kinds: list[str]) -> None:
        """Force these faults on the next requests, in order (handy in tests)."""
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise ValueError(f"unknown fault kinds {bad}; known: {', '.join(KINDS)}")
        with self._lock:
            self._queue.extend(kinds)

    def draw(self) -> str | None:
        """The fault for the next request."""
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if self.config.rate <= 0:
                return None
            roll, pick = self._rng.random(), self._rng.choice(self.config.kinds)
            return pick if roll < self.config.rate else None
