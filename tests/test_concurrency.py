"""Streams side by side: results in plan order, one writer at a time, a run-stopping error stops every stream."""

from __future__ import annotations

import threading
import time

import pytest

from engine.concurrency import OneWriter, Prefetch, read_ahead, run_all


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


def test_read_ahead_opens_later_sequences_early_and_hands_them_over_in_order() -> None:
    opened: list[str] = []

    def open_(name: str) -> Prefetch[int, str]:
        opened.append(name)
        return Prefetch(lambda n: f"{name}{n}", 1, lambda n, answer: None, name=name)

    handed = read_ahead(["a", "b", "c", "d", "e"], open_, ahead=3)
    name, pages = next(handed)
    assert (name, list(pages), opened) == ("a", ["a1"], ["a", "b", "c"])
    assert [(n, list(p)) for n, p in handed] == [("b", ["b1"]), ("c", ["c1"]), ("d", ["d1"]), ("e", ["e1"])]


def test_an_error_of_a_sequence_read_ahead_surfaces_when_the_caller_reaches_it() -> None:
    def fetch(n: int) -> int:
        raise RuntimeError("gone")

    sequences = read_ahead(["a"], lambda name: Prefetch(fetch, 1, lambda n, answer: None, name=name), ahead=2)
    _, pages = next(sequences)
    with pytest.raises(RuntimeError, match="gone"):
        next(pages)
