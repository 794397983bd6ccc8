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


def test_a_cut_share_paces_both_windows_at_that_share_and_never_below_one() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=10, steady=150), clock=t.clock, sleep=t.sleep)
    budget.scale(37 / 150)
    assert budget.windows == ((1.0, 2), (60.0, 37))
    budget.scale(0.001)
    assert budget.windows == ((1.0, 1), (60.0, 1))
    budget.scale(1.0)
    assert budget.windows == ((1.0, 10), (60.0, 150))


def test_requests_others_spent_wait_until_the_api_window_resets() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=10, steady=15), clock=t.clock, sleep=t.sleep)
    budget.acquire()
    # The API counts 15 of 15 used (14 by another app); its window resets in 30 s.
    budget.follow(15, 30.0)
    budget.acquire()
    assert t.now == 30.0


def test_no_requests_are_added_when_the_api_counts_only_ours() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=10, steady=15), clock=t.clock, sleep=t.sleep)
    for _ in range(3):
        budget.acquire()
    budget.follow(2, 59.0)  # one of ours is still in flight
    assert budget.counted == 3


def test_until_the_api_answered_a_budget_lets_one_thread_send_and_the_others_wait_for_the_answer() -> None:
    import threading
    import time

    budget = RateBudget(RateTier(burst=10, steady=150))
    budget.acquire()  # the first request, on this thread
    budget.acquire()  # the same thread may go on (its own requests are sequential)
    other = threading.Thread(target=budget.acquire)
    other.start()
    time.sleep(0.2)
    assert other.is_alive() and len(budget.sent) == 2  # waits for the first answer
    budget.heard.set()
    other.join(2)
    assert not other.is_alive() and len(budget.sent) == 3
