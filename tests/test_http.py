"""The per-endpoint rate budget keeps klx inside Klaviyo's burst and steady windows."""

from __future__ import annotations

from engine.http import RateBudget
from engine.spec import RateTier


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_burst_window_makes_the_next_request_wait_a_second() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=3, steady=60), clock=t.clock, sleep=t.sleep)
    for _ in range(3):
        budget.acquire()
    assert t.slept == []
    budget.acquire()
    assert t.slept == [1.0]


def test_steady_window_makes_requests_wait_for_the_minute() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=10, steady=15), clock=t.clock, sleep=t.sleep)
    sent = []
    for _ in range(16):
        budget.acquire()
        sent.append(t.now)
        t.now += 0.2  # requests arrive faster than the steady rate allows
    assert len([s for s in sent if s < 60.0]) == 15
    assert sent[15] >= 60.0
