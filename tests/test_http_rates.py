"""The rate budgets of engine/http.py: sliding windows, the first answer awaited, and what the RateLimit-* headers say."""

from __future__ import annotations

import threading
import time

import pytest

from engine.http import RateBudget
from engine.spec import RateTier
from tests.test_http import FakeTime
from tests.test_http_errors import always, client, get
from tests.test_http_mutants import get_tiered


def test_a_cut_share_keeps_the_arrival_margin_on_both_windows() -> None:
    budget = RateBudget(RateTier(burst=10, steady=150), margin=0.25)
    budget.scale(0.5)
    assert budget.windows == ((1.25, 5), (60.25, 75))


def test_the_windows_slide_with_the_clock() -> None:
    t = FakeTime()
    t.now = 1000.0
    budget = RateBudget(RateTier(burst=3, steady=5), clock=t.clock, sleep=t.sleep)
    for _ in range(4):
        budget.acquire()
    assert t.slept == [1.0]  # the fourth waits for the first to leave the one-second window
    budget.acquire()
    t.now += 0.5
    assert budget.acquire() == 58.5  # the sixth waits for the first of five (sent at 1000.0) to leave the minute
    assert t.now == 1060.0


def test_a_stream_that_loses_the_freed_slot_to_another_waits_again_and_counts_both_waits() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=1, steady=60), clock=t.clock, sleep=None)

    def sleep(seconds: float) -> None:
        t.sleep(seconds)
        if len(t.slept) == 1:
            budget.sent.append(t.now)  # another stream sharing the budget takes the slot first

    budget.sleep = sleep
    budget.acquire()
    assert budget.acquire() == 2.0 and t.slept == [1.0, 1.0]


def test_the_budgets_of_a_client_widen_both_windows_by_the_arrival_margin() -> None:
    http = client("http://127.0.0.1:9")
    (budget,) = http._budgets("http://127.0.0.1:9/api/metrics", {}, "/api/metrics", "M")
    assert budget.windows == ((1.25, 10), (60.25, 150))


def test_a_stream_waiting_for_the_first_answer_reports_that_wait() -> None:
    budget = RateBudget(RateTier(burst=10, steady=150))
    budget.acquire()
    waited: list[float] = []
    other = threading.Thread(target=lambda: waited.append(budget.acquire()))
    other.start()
    time.sleep(0.3)
    budget.heard.set()
    other.join(2)
    assert 0.25 <= waited[0] < 1.0


def test_our_requests_up_to_a_second_before_the_api_window_count_as_ours() -> None:
    t = FakeTime()
    t.now = 10.0
    budget = RateBudget(RateTier(burst=10, steady=15), clock=t.clock, sleep=t.sleep)
    budget.acquire()
    t.now = 10.5
    # The API's window ends in 60.5 s, so it began at 11.0 at the latest; its Reset is rounded up to whole
    # seconds, so our request of 10.0 may be the one it counts.
    budget.spent_elsewhere(1, 60.5)
    assert list(budget.sent) == [10.0]
    # A second request counted there is another app's: it enters at the start of the API's window.
    budget.spent_elsewhere(2, 60.5)
    assert list(budget.sent) == [10.0, 11.0]


def test_our_requests_older_than_the_rounding_second_are_outside_the_api_window() -> None:
    t = FakeTime()
    t.now = 9.5
    budget = RateBudget(RateTier(burst=10, steady=15), clock=t.clock, sleep=t.sleep)
    budget.acquire()
    t.now = 10.5
    budget.spent_elsewhere(1, 60.5)  # the API's window began at 11.0 at the latest: 9.5 is not in it
    assert list(budget.sent) == [9.5, 11.0]


def rate_limited(limit: str, remaining: str, reset: str):
    headers = {"RateLimit-Limit": limit, "RateLimit-Remaining": remaining, "RateLimit-Reset": reset}
    return always(200, {"data": []}, headers)


@pytest.mark.parametrize(
    ("limit", "windows"),
    [
        ("37", ((1.25, 2), (60.25, 37))),  # tier M is 10/s, 150/min: the account gets 37/150 of it
        ("1", ((1.25, 1), (60.25, 1))),  # the smallest quota the API can state
        ("300", ((1.25, 10), (60.25, 150))),  # more than the spec's tier: klx never paces faster than the spec
        ("0", ((1.25, 10), (60.25, 150))),  # no usable figure: the spec's tier stands
    ],
)
def test_the_api_stated_limit_paces_the_endpoint_at_that_share_of_its_tier(limit: str, windows: tuple) -> None:
    with rate_limited(limit, limit, "60") as api:
        http = client(api.url)
        get_tiered(http)
    assert http.budgets["path:/api/metrics"].windows == windows


def test_an_api_stated_limit_cuts_every_bucket_the_request_counts_against() -> None:
    with rate_limited("75", "74", "60") as api:
        http = client(api.url)
        params = {"additional-fields[profile]": "predictive_analytics"}
        http.get(http.url_for("/api/profiles"), params, stream="profiles", endpoint="/api/profiles", tier="L")
    # L is 75/s, 750/min: the account gets a tenth, on the path and on the predictive-analytics bucket (M) alike.
    assert http.budgets["path:/api/profiles"].windows == ((1.25, 7), (60.25, 75))
    assert http.budgets["bucket:predictive_analytics"].windows == ((1.25, 1), (60.25, 15))


def test_requests_others_spent_are_counted_from_the_headers() -> None:
    with rate_limited("150", "140", "30") as api:
        http = client(api.url)
        get_tiered(http)
    # 10 used, 1 of them ours: 9 entered for the other apps sharing the account's quota.
    assert len(http.budgets["path:/api/metrics"].sent) == 10


@pytest.mark.parametrize(
    ("values", "rate"),
    [
        (("150", "0", "0"), (150.0, 0.0, 0.0)),  # all spent, the window resetting now
        (("150", "149.5", "59"), (150.0, 149.5, 59.0)),
        (("150", "-1", "30"), None),
        (("inf", "1", "1"), None),
        (("150", "nan", "1"), None),
        (("150", "many", "1"), None),
        (("150", "1"), None),  # RateLimit-Reset missing
    ],
)
def test_the_rate_headers_are_read_when_all_three_are_non_negative_numbers(values: tuple[str, ...], rate: tuple | None) -> None:
    headers = dict(zip(("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"), values))
    with always(200, {"data": []}, headers) as api:
        assert get(client(api.url)).rate == rate


def test_a_budget_wait_is_returned_to_be_reported() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=2, steady=60), clock=t.clock, sleep=t.sleep)
    assert [budget.acquire() for _ in range(3)] == [0.0, 0.0, 1.0]
