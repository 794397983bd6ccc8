"""Streams side by side: results in plan order, one writer at a time, a run-stopping error stops every stream."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.concurrency import Ended, Flights, FlightsByStream, Interrupt, OneWriter, Prefetch, WriteBehind, interleave, rate_now, run_all
from engine.run import start_order
from engine.spec import Spec

ROOT = Path(__file__).resolve().parent.parent


def test_results_come_back_in_job_order_whatever_order_jobs_end() -> None:
    def job(n: int, delay: float):
        def run() -> int:
            time.sleep(delay)
            return n
        return run

    assert run_all([job(0, 0.0), job(1, 0.2), job(2, 0.0)], workers=3, stop=lambda: None) == [0, 1, 2]


def test_jobs_overlap_up_to_the_worker_count() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def job() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.1)
        with lock:
            running[0] -= 1

    run_all([job] * 6, workers=3, stop=lambda: None)
    assert peak[0] == 3


def test_the_first_job_runs_alone_until_the_api_answered() -> None:
    ready, started = threading.Event(), []

    def first() -> None:
        started.append("first")
        time.sleep(0.2)
        assert started == ["first"]  # nobody else started before the API answered
        ready.set()
        time.sleep(0.1)

    def other() -> None:
        started.append("other")

    run_all([first, other, other], workers=3, stop=lambda: None, ready=ready)
    assert sorted(started) == ["first", "other", "other"]


def test_a_first_job_that_raises_before_an_answer_starts_no_other_job() -> None:
    started, stopped = [], []

    def first() -> None:
        raise RuntimeError("key refused")

    with pytest.raises(RuntimeError, match="key refused"):
        run_all([first, lambda: started.append(1)], workers=2, stop=lambda: stopped.append(1), ready=threading.Event())
    assert started == [] and stopped == [1]


def test_a_job_that_raises_stops_the_others_and_is_raised_once_they_ended() -> None:
    cut, ended = threading.Event(), []

    def failing() -> None:
        time.sleep(0.05)
        raise RuntimeError("unreachable")

    def waiting() -> None:
        cut.wait(5)  # what HttpClient.close does to a request in flight
        ended.append(1)

    with pytest.raises(RuntimeError, match="unreachable"):
        run_all([waiting, failing], workers=2, stop=cut.set)
    assert ended == [1]


def test_a_job_waiting_for_a_worker_never_starts_once_another_has_raised() -> None:
    # The worker the failing job frees took the next queued job before the caller's thread woke to cancel it:
    # a stream the run had stopped before started anyway, sent its first request and ended as cut short.
    started = []

    def failing() -> None:
        time.sleep(0.05)  # the other job is queued by now
        raise RuntimeError("warehouse gone")

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.5)  # the freed worker keeps running before the caller's thread wakes, as under load
    try:
        for _ in range(5):
            with pytest.raises(RuntimeError, match="warehouse gone"):
                run_all([failing, lambda: started.append(1)], workers=1, stop=lambda: None)
    finally:
        sys.setswitchinterval(before)
    assert started == []


def test_a_stop_asked_while_jobs_run_cuts_them_and_raises_keyboard_interrupt_on_the_callers_thread() -> None:
    # What a signal handler does mid-run: it only sets the flag (Interrupt.request raises nothing while run_all looks).
    interrupt, cut, ended = Interrupt(), threading.Event(), []

    def asks_then_hangs() -> None:
        interrupt.request()
        ended.append(cut.wait(30))  # a request in flight, until HttpClient.close cuts it

    with pytest.raises(KeyboardInterrupt):
        run_all([asks_then_hangs], workers=1, stop=cut.set, interrupt=interrupt)
    assert ended == [True]


def test_a_stop_asked_before_run_all_starts_no_job() -> None:
    # A KeyboardInterrupt raised while nothing looked (planning) and dropped there: the run still stops.
    interrupt, started = Interrupt(), []
    interrupt.requested = True
    with pytest.raises(KeyboardInterrupt):
        run_all([lambda: started.append(1)], workers=1, stop=lambda: None, interrupt=interrupt)
    assert started == []


def test_a_stop_asked_while_run_all_is_not_looking_raises_at_once() -> None:
    interrupt = Interrupt()
    with pytest.raises(KeyboardInterrupt):
        interrupt.request()
    assert interrupt.requested


def test_one_writer_holds_one_lock_for_the_destination_and_every_load_it_began() -> None:
    inside, overlaps = [0], []

    class Load:
        def write(self) -> None:
            inside[0] += 1
            overlaps.append(inside[0])
            time.sleep(0.01)
            inside[0] -= 1

    class Destination:
        dialect = "duckdb"

        def begin(self) -> Load:
            return Load()

    writer = OneWriter(Destination())
    loads = [writer.begin() for _ in range(4)]
    threads = [threading.Thread(target=lambda load=load: [load.write() for _ in range(5)]) for load in loads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.dialect == "duckdb" and max(overlaps) == 1 and len(overlaps) == 20


def test_a_prefetch_yields_each_answer_in_order_and_asks_for_the_next_before_the_caller_is_done() -> None:
    asked: list[int] = []

    def fetch(n: int) -> int:
        asked.append(n)
        return n * 10

    pages = Prefetch(fetch, 1, lambda n, answer: n + 1 if n < 3 else None, name="t")
    first = next(pages)
    time.sleep(0.1)
    assert first == 10 and asked == [1, 2]  # page 2 was asked for while page 1 is being worked on
    assert list(pages) == [20, 30]


def pages_of(name: str, count: int, delays: dict[str, float] | None = None) -> Prefetch[int, str]:
    """A sequence of `count` pages named name1, name2...; each fetch of `name` sleeps delays[name]."""
    def fetch(n: int) -> str:
        time.sleep((delays or {}).get(name, 0))
        return f"{name}{n}"

    return Prefetch(fetch, 1, lambda n, answer: n + 1 if n < count else None, name=name)


def test_interleave_takes_one_page_of_each_open_sequence_in_turn_and_opens_the_next_when_one_ends() -> None:
    opened: list[str] = []
    counts = {"a": 3, "b": 1, "c": 2, "d": 1}

    def open_(name: str) -> Prefetch[int, str]:
        opened.append(name)
        return pages_of(name, counts[name])

    taken = interleave(list(counts), open_, width=2)
    assert next(taken) == ("a", "a1") and opened == ["a", "b"]  # two open at once, both fetching
    rest = [(name, answer if isinstance(answer, str) else "end") for name, answer in taken]
    assert rest == [("b", "b1"), ("a", "a2"), ("b", "end"), ("a", "a3"), ("c", "c1"), ("a", "end"),
                    ("c", "c2"), ("d", "d1"), ("c", "end"), ("d", "end")]
    assert opened == ["a", "b", "c", "d"]


def test_interleave_order_does_not_depend_on_which_answer_comes_first() -> None:
    """A slow sequence is waited for in its turn, so rows (and first-seen columns) come in the same order every run."""
    def order(delays: dict[str, float]) -> list[tuple[str, object]]:
        return [(n, a) for n, a in interleave(["a", "b", "c"], lambda name: pages_of(name, 2, delays), width=3)
                if isinstance(a, str)]

    assert order({"a": 0.05}) == order({"c": 0.05}) == [("a", "a1"), ("b", "b1"), ("c", "c1"), ("a", "a2"), ("b", "b2"), ("c", "c2")]


def test_interleave_fetches_open_sequences_at_once() -> None:
    together = threading.Barrier(4, timeout=10)  # broken unless all four first fetches are in flight at once

    def open_(name: str) -> Prefetch[int, str]:
        return Prefetch(lambda n: (together.wait(), f"{name}{n}")[1], 1, lambda n, answer: None, name=name)

    answers = [a for _, a in interleave(["a", "b", "c", "d"], open_, width=4) if isinstance(a, str)]
    assert answers == ["a1", "b1", "c1", "d1"] and not together.broken


def test_a_failing_sequence_ends_with_its_error_and_the_others_go_on() -> None:
    def open_(name: str) -> Prefetch[int, str]:
        if name == "b":
            return Prefetch(lambda n: (_ for _ in ()).throw(RuntimeError("gone")), 1, lambda n, answer: None, name=name)
        return pages_of(name, 1)

    taken = list(interleave(["a", "b", "c"], open_, width=2))
    ends = {name: answer.error for name, answer in taken if isinstance(answer, Ended)}
    assert [a for _, a in taken if isinstance(a, str)] == ["a1", "c1"]
    assert set(ends) == {"a", "b", "c"} and str(ends["b"]) == "gone" and ends["a"] is None and ends["c"] is None


def test_closing_interleave_stops_every_open_sequence() -> None:
    sequences: list[Prefetch[int, str]] = []

    def open_(name: str) -> Prefetch[int, str]:
        sequences.append(pages_of(name, 5))
        return sequences[-1]

    taken = interleave(["a", "b", "c"], open_, width=3)
    next(taken)
    taken.close()
    assert len(sequences) == 3 and all(s.pending is None for s in sequences)


def test_flights_keep_rate_times_latency_in_flight_plus_one_within_one_and_the_cap() -> None:
    rate = [10.0]
    flights = Flights(budget_rate=lambda: rate[0], cap=6)
    assert flights.limit() == 6  # nothing measured yet
    flights.answered(0.3)
    assert flights.limit() == 4  # 10/s x 0.3 s = 3 in flight, one more for jitter
    rate[0] = 0.5
    assert flights.limit() == 2
    rate[0] = 1000.0
    assert flights.limit() == 6


def test_flights_keep_no_more_in_flight_than_the_consumer_can_use() -> None:
    flights = Flights(cap=10)  # no rate budget: only the consumer bounds it
    flights.answered(1.0)
    assert flights.limit() == 10
    flights.worked(0.5)  # two pages a second turned into rows
    assert flights.limit() == 3


def test_only_the_sequences_whose_turn_is_within_the_flights_limit_fetch_ahead() -> None:
    flights = Flights(budget_rate=lambda: 1.0, cap=6)
    flights.answered(1.0)  # 1/s x 1 s + 1 = 2
    active, most, fetched, lock = [0], [0], [], threading.Lock()

    def open_(name: str) -> Prefetch[int, str]:
        def fetch(n: int) -> str:
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
                fetched.append(f"{name}{n}")
            time.sleep(0.1)
            with lock:
                active[0] -= 1
            return f"{name}{n}"

        return Prefetch(fetch, 1, lambda n, answer: n + 1 if n < 2 else None, name=name, eager=False)

    taken = interleave(list("abcdef"), open_, width=6, flights=flights)
    assert next(taken) == ("a", "a1")
    time.sleep(0.3)
    assert sorted(fetched) == ["a1", "b1"]  # b's turn is next; c..f wait for theirs
    answers = [a for _, a in taken if isinstance(a, str)]
    assert len(answers) == 11 and most[0] == 2
    # Fetched in the order they are taken, give or take the two at once.
    order = ["a1", "b1", "c1", "d1", "e1", "f1", "a2", "b2", "c2", "d2", "e2", "f2"]
    assert sorted(fetched) == sorted(order) and all(abs(fetched.index(page) - i) <= 1 for i, page in enumerate(order))
    assert flights.work is not None  # the consumer's time per page was measured


def test_answered_requests_tell_their_stream_how_long_the_wire_takes() -> None:
    seen: list[tuple] = []

    class Inner:
        def request(self, *args):
            seen.append(args)

        def page(self, stream, records):
            seen.append((stream, records))

    by_stream = FlightsByStream(Inner(), lambda name: (lambda: 2.0))
    by_stream.request("events", "u", 200, 0.5)
    by_stream.request("events", "u", 429, 0.01)  # a refusal says nothing about the time an answer takes
    by_stream.page("events", 3)
    assert by_stream["events"].latency == 0.5 and by_stream["events"].limit() == 2
    assert seen == [("events", "u", 200, 0.5), ("events", "u", 429, 0.01), ("events", 3)]


def test_the_rate_of_several_budgets_is_the_tightest_one() -> None:
    class Budget:
        def __init__(self, rate: float) -> None:
            self.rate = rate

        def rate_now(self) -> float:
            return self.rate

    assert rate_now([]) is None
    assert rate_now([Budget(10.0)]) == 10.0
    assert rate_now([Budget(10.0), Budget(2.0)]) == 2.0  # the tightest budget a request waits for


def test_streams_on_the_scarcest_rate_budgets_start_first_in_plan_order_among_equals() -> None:
    spec = Spec.from_yaml(ROOT / "specs" / "klaviyo.yaml")
    names = ["campaigns", "email_templates", "events", "flows", "global_exclusions", "lists", "metrics", "segments", "profiles",
             "segments_profiles"]  # plan order: parents first
    # flows is tier S (60/min); campaigns and metrics M (150/min); profiles and segments_profiles ask for predictive
    # analytics (its bucket is M, below their path's L); events is XL.
    assert [names[i] for i in start_order(spec, names)] == [
        "flows", "campaigns", "metrics", "profiles", "segments_profiles", "email_templates", "global_exclusions", "lists", "segments",
        "events"]


def test_a_stream_without_any_rate_limit_starts_last() -> None:
    spec = Spec.from_yaml(ROOT / "specs" / "klaviyo.yaml")
    free = dataclasses.replace(spec.streams["lists"], rate_limit=None)
    spec = dataclasses.replace(spec, streams={**spec.streams, "lists": free})
    assert start_order(spec, ["lists", "events"]) == [1, 0]


@dataclasses.dataclass(frozen=True)
class _Batch:
    """Batch n of a test, with n + 1 rows."""

    n: int

    @property
    def num_rows(self) -> int:
        return self.n + 1


class _Load:
    """A load that records calls; write n blocks until released[n] is set, and fails when told to."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[str] = []
        self.released = [threading.Event() for _ in range(4)]
        self.fail_on = fail_on

    def write(self, batch, columns, state, deletes=None):
        n = batch.n
        self.calls.append(f"write {n} begins")
        assert self.released[n].wait(5)
        self.calls.append(f"write {n} ends")
        if n == self.fail_on:
            raise RuntimeError(f"write {n} failed")
        return n * 10

    def finish(self, state):
        self.calls.append(f"finish {state}")

    def abort(self):
        self.calls.append("abort")


def test_write_behind_returns_at_once_and_keeps_one_write_in_flight() -> None:
    load, counts, committed = _Load(), [], []
    with ThreadPoolExecutor(max_workers=1) as writes:
        behind = WriteBehind(load, writes, counts.append, committed.append)
        behind.write(_Batch(0), [], {})  # returns while write 0 is still running
        assert counts == []
        second = threading.Thread(target=behind.write, args=(_Batch(1), [], {}))
        second.start()
        second.join(0.2)
        assert second.is_alive()  # the next write waits for the one in flight
        load.released[0].set()
        second.join(5)
        assert counts == [0]
        load.released[1].set()
        behind.finish("s")
    assert counts == [0, 10] and committed == [1, 2]  # each batch's rows, once its write has returned
    assert load.calls == ["write 0 begins", "write 0 ends", "write 1 begins", "write 1 ends", "finish s"]


def test_a_failed_write_is_raised_by_the_next_write_and_never_finishes_the_load() -> None:
    load, counts, committed = _Load(fail_on=0), [], []
    load.released[0].set()
    with ThreadPoolExecutor(max_workers=1) as writes:
        behind = WriteBehind(load, writes, counts.append, committed.append)
        behind.write(_Batch(0), [], {})
        with pytest.raises(RuntimeError, match="write 0 failed"):
            behind.write(_Batch(1), [], {})
        behind.abort()
    assert counts == [] and committed == [] and load.calls == ["write 0 begins", "write 0 ends", "abort"]


def test_abort_waits_for_the_write_in_flight_and_ignores_its_outcome() -> None:
    load = _Load(fail_on=0)
    with ThreadPoolExecutor(max_workers=1) as writes:
        behind = WriteBehind(load, writes, lambda counts: None)
        behind.write(_Batch(0), [], {})
        threading.Timer(0.2, load.released[0].set).start()
        behind.abort()  # no error: the stream is already failing for another reason
    assert load.calls == ["write 0 begins", "write 0 ends", "abort"]


def test_abort_counts_a_write_in_flight_that_committed() -> None:
    # An incremental load's committed batch stays in the table when the stream then fails: it counts.
    load, counts, committed = _Load(), [], []
    with ThreadPoolExecutor(max_workers=1) as writes:
        behind = WriteBehind(load, writes, counts.append, committed.append)
        behind.write(_Batch(2), [], {})
        threading.Timer(0.2, load.released[2].set).start()
        behind.abort()
    assert counts == [20] and committed == [3] and load.calls == ["write 2 begins", "write 2 ends", "abort"]


def test_without_a_writer_thread_writes_run_at_once() -> None:
    load, counts = _Load(), []
    load.released[0].set()
    behind = WriteBehind(load, None, counts.append)
    behind.write(_Batch(0), [], {})
    assert counts == [0] and load.calls == ["write 0 begins", "write 0 ends"]
