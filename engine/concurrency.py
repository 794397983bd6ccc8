"""Running independent request sequences at once: the streams of a run behind one destination writer, and
the request sequences of one stream in turn.

Streams share nothing but the HttpClient (whose per-bucket budgets pace every request, so running
streams side by side fills the rate limits instead of multiplying 429s) and the destination, which
takes one call at a time (a DuckDB connection is not thread-safe; one writer also keeps each batch's
MERGE and state in one transaction, as when streams ran one after another).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")  # a request
X = TypeVar("X")  # what names a request sequence (a partition, a parent's child path)
# Streams read at once. Enough to keep every rate bucket of a typical selection busy while others wait
# on latency; each running stream holds at most one batch and one prefetched page in memory.
MAX_STREAMS = 6
# Request sequences of one stream (partitions, time slices, each parent's children) read at once.
# Each holds at most one page waiting, so memory stays bounded; the rate budgets keep the pace.
SEQUENCES_OPEN = 6


class OneWriter:
    """`target` (a destination, or a load it began) whose every method call holds one lock shared by all of them."""

    def __init__(self, target: Any, lock: threading.RLock | None = None) -> None:
        self._target = target
        self._lock = lock or threading.RLock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                result = attribute(*args, **kwargs)
            # A load begun here writes through the same lock.
            return OneWriter(result, self._lock) if name == "begin" else result

        return call


def run_all(
    jobs: Sequence[Callable[[], T]], *, workers: int, stop: Callable[[], None], ready: threading.Event | None = None
) -> list[T]:
    """Run `jobs` at most `workers` at a time and return their results in order.

    The first job runs alone until `ready` is set (the API answered a request) or it ends: a refused key
    or an unreachable API is then found by one request, and no other job starts. A job that raises stops
    the rest: jobs not started never start, `stop()` cuts what is in flight (HttpClient.close), and the
    first exception is raised once every running job has ended. Ctrl-C does the same.
    """
    if not jobs:
        return []
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs))), thread_name_prefix="klx-stream")
    futures: list[Future[T]] = [pool.submit(jobs[0])]
    try:
        while ready is not None and not ready.wait(0.05) and not futures[0].done():
            pass
        if not (futures[0].done() and futures[0].exception() is not None):
            futures += [pool.submit(job) for job in jobs[1:]]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and not f.cancelled() and f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
        return [f.result() for f in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        stop()
        raise
    finally:
        pool.shutdown(wait=True)


class Prefetch(Generic[R, T]):
    """The answers of one request sequence, in order; the next is fetched in the background while the caller
    works on this one, so the API's latency and our row building overlap and at most one answer waits.

    The first request is sent at once (interleave opens sequences before the caller reaches them).
    """

    def __init__(self, fetch: Callable[[R], T], first: R | None, following: Callable[[R, T], R | None], name: str) -> None:
        self.fetch, self.following, self.request = fetch, following, first
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.pending: Future[T] | None = self.pool.submit(fetch, first) if first is not None else None

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self.pending is None:
            self.close()
            raise StopIteration
        try:
            answer = self.pending.result()
            self.request = self.following(self.request, answer)  # type: ignore[arg-type]
        except BaseException:
            self.close()
            raise
        self.pending = self.pool.submit(self.fetch, self.request) if self.request is not None else None
        return answer

    def close(self) -> None:
        """Stop fetching; never wait for a request in flight (HttpClient.close() cuts it)."""
        self.pending = None
        self.pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class Ended:
    """A request sequence has no more pages: read to its end (`error` None) or stopped by `error`."""

    error: Exception | None = None


def interleave(items: Iterable[X], open_: Callable[[X], Iterator[T]], width: int = SEQUENCES_OPEN) -> Iterator[tuple[X, T | Ended]]:
    """The answers of up to `width` request sequences at once, taken in turn: (item, answer), then (item, Ended).

    Items are opened in order (`open_` starts fetching at once, see Prefetch) and answers are taken one
    from each open sequence in a fixed rotation, so the order the caller sees depends only on the pages,
    never on which answer came first: rows, first-seen columns and checkpoints are the same on every run.
    A sequence that fails ends with its error (the caller decides whether the stream goes on); an error
    from `items` itself is raised. Closing the iterator stops every open sequence.
    """
    source = iter(items)
    open_now: deque[tuple[X, Iterator[T]]] = deque()
    more = True
    try:
        while True:
            while more and len(open_now) < width:
                item = next(source, _NOTHING)
                if item is _NOTHING:
                    more = False
                else:
                    open_now.append((item, open_(item)))  # type: ignore[arg-type]
            if not open_now:
                return
            item, sequence = open_now.popleft()
            try:
                answer = next(sequence)
            except StopIteration:
                yield item, Ended()
                continue
            except Exception as err:  # noqa: BLE001 - handed to the caller with its sequence
                _close(sequence)
                yield item, Ended(err)
                continue
            open_now.append((item, sequence))
            yield item, answer
    finally:
        for _, sequence in open_now:
            _close(sequence)


_NOTHING = object()


def _close(sequence: Any) -> None:
    close = getattr(sequence, "close", None)
    if close is not None:
        close()
