"""Running independent request sequences at once: the streams of a run behind one destination writer, and
the request sequences of one stream in turn.

Streams share nothing but the HttpClient (whose per-bucket budgets pace every request, so running
streams side by side fills the rate limits instead of multiplying 429s) and the destination, which
takes one call at a time (a DuckDB connection is not thread-safe; one writer also keeps each batch's
MERGE and state in one transaction, as when streams ran one after another).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from itertools import islice
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")  # a request
X = TypeVar("X")  # what names a request sequence (a partition, a parent's child path)
# Streams read at once. Enough to keep every rate bucket of a typical selection busy while others wait
# on latency; each running stream holds at most one batch and one prefetched page in memory.
MAX_STREAMS = 6
# Request sequences of one stream (partitions, time slices, each parent's children) open at once, taken in
# turn: the hard cap on its pages fetched ahead. How many of them fetch at a time is up to the stream's
# Flights (below); the rate budgets keep the pace.
SEQUENCES_OPEN = 6
# Weight of the newest sample in the running averages of latency and work per page.
SMOOTHING = 0.3
# Seconds at most between two looks of run_all at a stop a signal asked for (Interrupt).
STOP_LOOK_SECONDS = 0.1


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


class WriteBehind:
    """A stream's load whose batches are written on `writes` (the run's writer thread) while the stream reads on.

    At most one write per stream is in flight: the next write, finish() or the end of the stream waits for it,
    and raises its error there. Each batch keeps its rows and state in one transaction, as before; what
    changes is that the stream's thread turns the next pages into rows while the warehouse loads the last
    batch (DuckDB runs a statement without holding the GIL). `on_written` gets each write's counts, in order,
    on the stream's thread, and `on_committed` (when given) the number of rows of the batch it committed.
    Without `writes` every write runs at once, on the caller's thread.
    """

    def __init__(
        self, load: Any, writes: ThreadPoolExecutor | None, on_written: Callable[[Any], None], on_committed: Callable[[int], None] | None = None
    ) -> None:
        self._load, self._writes, self._on_written = load, writes, on_written
        self._on_committed = on_committed or (lambda rows: None)
        self._pending: tuple[Future[Any], int] | None = None

    def write(self, batch: Any, columns: Any, state: Any, *, deletes: Any = None) -> None:
        """Start writing `batch` once the stream's previous write has ended."""
        self.wait()
        if self._writes is None:
            self._on_written(self._load.write(batch, columns, state, deletes=deletes))
            self._on_committed(batch.num_rows)
        else:
            self._pending = (self._writes.submit(self._load.write, batch, columns, state, deletes=deletes), batch.num_rows)

    def wait(self) -> None:
        """Wait for the write in flight, if any; its error is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            written, rows = pending
            self._on_written(written.result())
            self._on_committed(rows)

    def finish(self, state: Any) -> None:
        """Make the load visible once its last write has ended; what finishing changed, if anything, goes to `on_written`."""
        self.wait()
        changed = self._load.finish(state)
        if changed is not None:
            self._on_written(changed)

    def abort(self) -> None:
        """Drop the load once a write in flight has ended (committed or rolled back: its error is not raised here;
        a write that committed is still counted)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            written, rows = pending
            wait([written])
            if written.exception() is None:  # it committed: its rows stay (an incremental load's), so they count
                self._on_written(written.result())
                self._on_committed(rows)
        self._load.abort()


class Interrupt:
    """A stop that a signal (Ctrl-C, SIGTERM) asks of a run, acted on where the run looks for it.

    A handler that raises KeyboardInterrupt raises it in whatever the main thread is running at that instant;
    inside a finalizer (a ThreadPoolExecutor's weakref callback or a __del__ that a garbage collection runs)
    Python prints "Exception ignored" and drops it, and the run goes on, deaf to the next signals that klx
    ignores once it is stopping. So while run_all waits for the streams, which is nearly all of a run, the
    handler only sets `requested`, taking no lock (one the interrupted main thread holds would never be
    released), and run_all raises KeyboardInterrupt itself on its own thread at its next look. Where nothing
    looks (opening the warehouse, planning, printing the summary) the handler raises as before, and a request
    dropped there is raised when run_all starts.
    """

    def __init__(self) -> None:
        self.requested = False
        self.watched = False  # run_all is looking: the handler need not raise

    def request(self) -> None:
        """Ask for the stop (from a signal handler): raises KeyboardInterrupt at once unless run_all is looking."""
        self.requested = True
        if not self.watched:
            raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was asked for: a point where the run stops cleanly."""
        if self.requested:
            raise KeyboardInterrupt


def run_all(
    jobs: Sequence[Callable[[], T]], *, workers: int, stop: Callable[[], None], ready: threading.Event | None = None,
    interrupt: Interrupt | None = None,
) -> list[T]:
    """Run `jobs` at most `workers` at a time and return their results in order.

    The first job runs alone until `ready` is set (the API answered a request) or it ends: a refused key
    or an unreachable API is then found by one request, and no other job starts. A job that raises stops
    the rest: jobs not started never start, `stop()` cuts what is in flight (HttpClient.close), and the
    first exception is raised once every running job has ended. A stop `interrupt` asks for does the same
    within STOP_LOOK_SECONDS, then raises KeyboardInterrupt, as Ctrl-C did when its handler raised.
    """
    interrupt = interrupt or Interrupt()
    interrupt.check()  # asked for before: a KeyboardInterrupt raised where nothing heeded it (see Interrupt)
    if not jobs:
        return []
    interrupt.watched = True
    try:
        results = _run_all(jobs, workers, stop, ready, interrupt)
    finally:
        interrupt.watched = False
    interrupt.check()  # asked for after the last look: the handler did not raise, so it is raised here
    return results


def _run_all(jobs: Sequence[Callable[[], T]], workers: int, stop: Callable[[], None], ready: threading.Event | None,
             interrupt: Interrupt) -> list[T]:
    # Set as a job raises, before its worker can take the next job: cancelling the queued jobs comes only once the
    # caller's thread wakes, and a worker freed by the failing job would start the next one in between.
    halted = threading.Event()

    def guarded(job: Callable[[], T]) -> Callable[[], T | None]:
        def run() -> T | None:
            if halted.is_set():
                return None  # its turn came after the run began to stop: it never starts
            try:
                return job()
            except BaseException:
                halted.set()
                raise

        return run

    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs))), thread_name_prefix="klx-stream")
    futures: list[Future[T]] = [pool.submit(guarded(jobs[0]))]  # type: ignore[list-item]
    try:
        while ready is not None and not ready.wait(0.05) and not futures[0].done():
            interrupt.check()
        interrupt.check()
        if not (futures[0].done() and futures[0].exception() is not None):
            futures += [pool.submit(guarded(job)) for job in jobs[1:]]  # type: ignore[misc]
        while True:
            done, running = wait(futures, timeout=STOP_LOOK_SECONDS, return_when=FIRST_EXCEPTION)
            interrupt.check()
            if not running or any(not f.cancelled() and f.exception() is not None for f in done):
                break
        failed = next((f for f in futures if f in done and not f.cancelled() and f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
        return [f.result() for f in futures]
    except BaseException:
        halted.set()
        for future in futures:
            future.cancel()
        stop()
        raise
    finally:
        pool.shutdown(wait=True)


class Flights:
    """How many pages one stream fetches ahead of the one it is loading: enough to keep its rate budget busy,
    and no more.

    By Little's law a stream that can use `rate` requests a second, each answered in `latency` seconds,
    needs rate x latency requests in flight; one more covers the jitter. `rate` is the least of what its
    rate budgets let through now (`budget_rate`, None: no limit) and the pages a second its one consuming
    thread turns into rows: more in flight than the client can parse only holds pages in memory. Between
    1 and `cap`; `cap` until there is something to measure.
    """

    def __init__(self, budget_rate: Callable[[], float | None] = lambda: None, cap: int = SEQUENCES_OPEN) -> None:
        self.budget_rate, self.cap = budget_rate, cap
        self.latency: float | None = None  # seconds an answer takes on the wire (running average)
        self.work: float | None = None  # seconds the consumer spends on a page (running average)

    def limit(self) -> int:
        """Pages this stream may have fetched or in flight ahead of the consumer now."""
        rates = [r for r in (self.budget_rate(), 1.0 / self.work if self.work else None) if r is not None]
        if self.latency is None or not rates:
            return self.cap
        return max(1, min(self.cap, math.ceil(min(rates) * self.latency) + 1))

    def answered(self, seconds: float) -> None:
        """One request took `seconds` on the wire (rate-limit waits excluded)."""
        self.latency = _average(self.latency, seconds)

    def worked(self, seconds: float) -> None:
        """The consumer spent `seconds` on one page."""
        self.work = _average(self.work, seconds)


class FlightsByStream:
    """Each stream's Flights, fed with the wire time of its answered requests: a run's observer (engine/events.py)
    that hands every event on to `inner`. `budget_rate(stream)` makes the function a stream's Flights asks."""

    def __init__(self, inner: Any, budget_rate: Callable[[str], Callable[[], float | None]]) -> None:
        self.inner, self.budget_rate = inner, budget_rate
        self.streams: dict[str, Flights] = {}
        self.lock = threading.Lock()

    def __getitem__(self, stream: str) -> Flights:
        with self.lock:
            if stream not in self.streams:
                self.streams[stream] = Flights(self.budget_rate(stream))
            return self.streams[stream]

    def request(self, stream: str, url: str, status: int | None, seconds: float) -> None:
        if status is not None and 200 <= status < 300:  # a refusal says nothing about the time an answer takes
            self[stream].answered(seconds)
        self.inner.request(stream, url, status, seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def rate_now(budgets: Sequence[Any]) -> float | None:
    """Requests a second these rate budgets (http.RateBudget) let through now, None without any: one with room
    left in its steady window sends at its burst rate, a full one at its steady rate."""
    return min((budget.rate_now() for budget in budgets), default=None)


def _average(current: float | None, sample: float) -> float:
    return sample if current is None else current + SMOOTHING * (sample - current)


class Prefetch(Generic[R, T]):
    """The answers of one request sequence, in order; the next is fetched in the background while the caller
    works on this one, so the API's latency and our row building overlap and at most one answer waits.

    The first request is sent at once; with `eager=False` each fetch waits for `start()` (or the caller
    asking for the answer), so interleave decides how many sequences fetch ahead.
    """

    def __init__(
        self, fetch: Callable[[R], T], first: R | None, following: Callable[[R, T], R | None], name: str, eager: bool = True
    ) -> None:
        self.fetch, self.following, self.request, self.eager = fetch, following, first, eager
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.pending: Future[T] | None = None
        if eager:
            self.start()

    def start(self) -> None:
        """Fetch the next answer now, unless it is on its way or there is none."""
        if self.pending is None and self.request is not None:
            self.pending = self.pool.submit(self.fetch, self.request)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        self.start()
        if self.pending is None:
            self.close()
            raise StopIteration
        try:
            answer = self.pending.result()
            self.request = self.following(self.request, answer)  # type: ignore[arg-type]
        except BaseException:
            self.close()
            raise
        self.pending = None
        if self.eager:
            self.start()
        return answer

    def close(self) -> None:
        """Stop fetching; never wait for a request in flight (HttpClient.close() cuts it)."""
        self.pending = self.request = None
        self.pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class Ended:
    """A request sequence has no more pages: read to its end (`error` None) or stopped by `error`."""

    error: Exception | None = None


def interleave(
    items: Iterable[X], open_: Callable[[X], Iterator[T]], width: int = SEQUENCES_OPEN, flights: Flights | None = None
) -> Iterator[tuple[X, T | Ended]]:
    """The answers of up to `width` request sequences at once, taken in turn: (item, answer), then (item, Ended).

    Items are opened in order (`open_` starts fetching at once, see Prefetch) and answers are taken one
    from each open sequence in a fixed rotation, so the order the caller sees depends only on the pages,
    never on which answer came first: rows, first-seen columns and checkpoints are the same on every run.
    A sequence that fails ends with its error (the caller decides whether the stream goes on); an error
    from `items` itself is raised. Closing the iterator stops every open sequence.

    With `flights`, only the sequences whose turn comes within `flights.limit()` fetch ahead (a sequence
    that can wait, Prefetch(eager=False), starts when its turn nears): pages are fetched in the order they
    are taken, so the wait is never for a page that has no place, and at most that many pages are held.
    The time the caller spends on each answer is told to `flights`.
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
            for _, upcoming in islice(open_now, flights.limit() if flights is not None else width):
                _start(upcoming)
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
            began = time.monotonic()
            yield item, answer
            if flights is not None:
                flights.worked(time.monotonic() - began)
    finally:
        for _, sequence in open_now:
            _close(sequence)


_NOTHING = object()


def _start(sequence: Any) -> None:
    start = getattr(sequence, "start", None)
    if start is not None:
        start()


def _close(sequence: Any) -> None:
    close = getattr(sequence, "close", None)
    if close is not None:
        close()
