"""The rate budgets of engine/http.py: a sliding burst window and a fixed steady one, the first answer awaited, and what the RateLimit-* headers say."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from engine.http import RateBudget
from engine.config import default_spec_path
from engine.spec import RateTier, Spec
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


def _sent_at_gaps(budget: RateBudget, t: FakeTime, *, placed: bool) -> list[float]:
    """When six requests asked for at these gaps go out (steady 3 a minute); `placed`: the first answer places the window."""
    sent: list[float] = []
    for gap in (0.0, 30.0, 29.0, 0.5, 0.0, 0.0):
        t.now += gap
        budget.acquire()
        if placed and not sent:
            budget.follow(1, 60.0)  # the first answer's headers place the window: it ends 60 s after it opened
        sent.append(t.now)
    return sent


def test_the_steady_quota_comes_back_whole_when_a_placed_window_closes() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=10, steady=3), clock=t.clock, sleep=t.sleep)
    # The window opened at 0.0 closes at 60.0; the next three go at once, where a sliding minute would
    # space them as the first three were (below).
    assert _sent_at_gaps(budget, t, placed=True) == [0.0, 30.0, 59.0, 60.0, 60.0, 60.0]
    assert (budget.opened, budget.closes, budget.counted) == (60.0, 120.0, 3)


def test_a_bucket_no_header_places_keeps_a_sliding_minute() -> None:
    # Where the API's minutes fall is unknown: no 60 s may hold more than `steady`, wherever they fall.
    t = FakeTime()
    budget = RateBudget(RateTier(burst=10, steady=3), clock=t.clock, sleep=t.sleep)
    sent = _sent_at_gaps(budget, t, placed=False)
    assert sent == [0.0, 30.0, 59.0, 60.0, 90.0, 119.0]
    assert all(sum(1 for s in sent if start <= s < start + 60) <= 3 for start in sent)
    assert not budget.placed and budget.rate_now() == 3 / 60


def test_nothing_is_sent_in_the_last_two_margins_of_a_steady_window() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=10, steady=150), clock=t.clock, sleep=t.sleep, margin=0.25)
    budget.acquire()
    budget.placed = True  # headers placed the window where we guessed it (follow would say so)
    t.now = 59.74
    budget.acquire()  # still certainly in the API's window
    t.now = 59.75
    assert budget.acquire() == 0.5  # may arrive on either side of the API's window end: wait for the next window
    assert (budget.opened, budget.closes, budget.quiet, budget.counted) == (60.25, 120.5, 120.0, 1)


def test_an_answer_placing_the_window_makes_it_fixed_from_then_on() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=10, steady=2), clock=t.clock, sleep=t.sleep)
    budget.acquire()
    assert not budget.placed
    budget.follow(1, 60.0)
    assert budget.placed
    t.now = 30.0
    budget.acquire()
    assert budget.acquire() == 30.0 and budget.acquire() == 0.0  # both go when the fixed window closes at 60
    assert t.now == 60.0


def test_a_full_steady_window_holds_requests_until_it_closes() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=10, steady=2), clock=t.clock, sleep=t.sleep, margin=0.25)
    budget.acquire()
    budget.acquire()
    t.now = 5.0
    assert budget.acquire() == 55.25 and t.now == 60.25


def test_the_api_count_takes_others_requests_and_keeps_ours_sent_since() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=10, steady=15), clock=t.clock, sleep=t.sleep)
    budget.heard.set()  # the first answer came: other threads send too
    budget.acquire()
    budget.follow(5, 60.0)  # 4 of the 5 the API counted are another app's
    assert budget.counted == 5
    budget.acquire()
    budget.acquire()
    budget.follow(5, 60.0)  # the API counts the 7th (ours) and all before it as 5: ours stand
    assert budget.counted == 7
    other: list[int] = []
    worker = threading.Thread(target=lambda: (budget.acquire(), other.append(budget.counted)))
    worker.start()
    worker.join()
    budget.follow(9, 60.0)  # answer to our 7th: 9 counted up to it, and the 8th (another thread's) since
    assert other == [8] and budget.counted == 10


@pytest.mark.parametrize(
    ("reset", "closes", "quiet"),
    [
        (30.0, 40.2, 38.75),  # the API's window ends by 40.2: another app opened it; the quota is back then
        (62.0, 72.2, 70.75),  # it certainly lasts past 70.25 (after 71.0): our guess would send into it
        (61.0, 70.25, 69.75),  # it ends in (70.0, 71.2]: ours (70.25) agrees and stands
        (60.0, 70.2, 68.75),  # it ends in (69.0, 70.2]: by 70.2, earlier than ours
    ],
)
def test_the_steady_window_ends_where_the_api_says_when_it_disagrees(reset: float, closes: float, quiet: float) -> None:
    t = FakeTime()
    t.now = 10.0
    budget = RateBudget(RateTier(burst=10, steady=150), clock=t.clock, sleep=t.sleep, margin=0.25)
    budget.acquire()
    assert (budget.closes, budget.quiet) == (70.25, 69.75)
    t.now = 10.2  # the answer comes; Reset is rounded up to whole seconds
    budget.follow(1, reset)
    assert (budget.closes, budget.quiet) == (pytest.approx(closes), pytest.approx(quiet))


@pytest.mark.parametrize(
    "reset",
    [
        60.0,  # by 70.25 at the latest: exactly where ours closes, so no earlier
        61.25,  # not before 70.25: exactly where ours closes, so no later
    ],
)
def test_an_api_window_ending_exactly_where_ours_does_changes_nothing(reset: float) -> None:
    t = FakeTime()
    t.now = 10.0
    budget = RateBudget(RateTier(burst=10, steady=150), clock=t.clock, sleep=t.sleep, margin=0.25)
    budget.acquire()
    t.now = 10.25
    budget.follow(1, reset)
    assert (budget.closes, budget.quiet) == (70.25, 69.75)


def test_a_window_the_api_says_lasts_longer_holds_a_full_window_until_then() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=10, steady=2), clock=t.clock, sleep=t.sleep)
    budget.acquire()
    budget.follow(1, 70.0)  # the API's minute began 10 s after ours (it counted a request of ours from before)
    budget.acquire()
    budget.acquire()
    assert t.now == 70.0


def test_an_answer_about_an_earlier_window_is_ignored() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=10, steady=15), clock=t.clock, sleep=t.sleep)
    budget.heard.set()
    budget.acquire()  # this thread's request, in the window opened at 0.0
    t.now = 61.0
    worker = threading.Thread(target=budget.acquire)  # another thread's opens the next window
    worker.start()
    worker.join()
    budget.follow(15, 1.0)
    assert (budget.opened, budget.closes, budget.counted) == (61.0, 121.0, 1)


@pytest.mark.parametrize("placed", [False, True], ids=["sliding", "placed"])
@pytest.mark.parametrize(("sent", "now", "rate"), [(1, 10.0, 10.0), (8, 10.0, 10.0), (14, 10.0, 10.0), (15, 10.0, 0.25), (15, 60.0, 10.0)])
def test_a_budget_sends_at_its_burst_rate_while_its_steady_window_has_room(placed: bool, sent: int, now: float, rate: float) -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=10, steady=15), clock=t.clock, sleep=t.sleep)
    for n in range(sent):
        budget.acquire()
        if placed and n == 0:
            budget.follow(1, 60.0)  # the headers place the window where it opened: it closes at 60.0
    assert budget.placed is placed
    t.now = now  # at 60.0 the full window has closed: the next request opens another
    assert budget.rate_now() == rate


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
    # 10 used, 1 of them ours: the other 9 are other apps' sharing the account's quota.
    assert http.budgets["path:/api/metrics"].counted == 10


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


@pytest.mark.parametrize(
    ("names", "rate"),
    [
        (("X-Quota", "X-Quota-Left", "X-Quota-Reset"), (150.0, 3.0, 20.0)),  # the spec's own names
        (None, None),  # rate_limit_headers: null, the API's figures are not read
    ],
)
def test_the_rate_headers_read_are_the_ones_the_spec_names(names: tuple[str, str, str] | None, rate: tuple | None) -> None:
    headers = {"X-Quota": "150", "X-Quota-Left": "3", "X-Quota-Reset": "20", "RateLimit-Limit": "9", "RateLimit-Remaining": "9", "RateLimit-Reset": "9"}
    with always(200, {"data": []}, headers) as api:
        http = client(api.url)
        http.api = dataclasses.replace(http.api, rate_limit_headers=names)
        assert get(http).rate == rate


def test_the_klaviyo_spec_names_the_ietf_draft_headers_and_a_spec_may_read_none(tmp_path) -> None:
    assert Spec.from_yaml(default_spec_path()).api.rate_limit_headers == ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
    text = default_spec_path().read_text()
    start = text.index("  rate_limit_headers:\n")
    end = text.index("  retry:\n", start)
    (tmp_path / "none.yaml").write_text(text[:start] + "  rate_limit_headers: null\n" + text[end:])
    assert Spec.from_yaml(tmp_path / "none.yaml").api.rate_limit_headers is None
    (tmp_path / "default.yaml").write_text(text[:start] + text[end:])
    assert Spec.from_yaml(tmp_path / "default.yaml").api.rate_limit_headers == ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def test_a_budget_wait_is_returned_to_be_reported() -> None:
    t = FakeTime()
    budget = RateBudget(RateTier(burst=2, steady=60), clock=t.clock, sleep=t.sleep)
    assert [budget.acquire() for _ in range(3)] == [0.0, 0.0, 1.0]
