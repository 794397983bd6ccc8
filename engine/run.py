"""Wiring: plan -> pages -> records -> rows -> warehouse, streams side by side (engine/concurrency.py); the run summary."""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator
from urllib.parse import quote

from . import collection, switching
from .concurrency import MAX_STREAMS, Ended, Flights, FlightsByStream, Interrupt, OneWriter, Prefetch, WriteBehind, interleave, rate_now, run_all
from .config import Config
from .destinations import build_destination
from .destinations.base import Destination, WriteCounts
from .errors import ApiError, KlxError, LockedError, WarehouseError
from .events import NO_EVENTS, RunEvents
from .schema import TableSpec
from .http import HttpClient, Page
from .paginators import Request, build_paginator, first_request
from .plan import PartitionPlan, StreamPlan, SyncPlan, build_plan, check_window, earlier_start, forget_dropped_tables, load_spec, table_name
from .deletes import PendingDeletes
from .records import RecordReader, Rejected, value_problem
from .rows import LOAD_COLUMNS, LOAD_ORDER, ColumnMap, RowBuilder
from .spec import Spec, StreamSpec
from .slices import Coverage, encode_covered, parse_covered
from .state import StateError, encode_state

log = logging.getLogger("klx.run")
# Response bytes per warehouse transaction, besides api.batch_rows: wide records (profiles) fill memory first.
# A profile's 2.9 KB of response is 4.4 KB of Python in a batch being built: at 8 MiB a profiles batch held
# 13 MB; 4 MiB took ~15 MB off a sync's peak, for more CPU: more commits (+6% at scale 10, +17% at scale 100,
# where each commit also matches its keys against a larger table; bench/README.md).
BATCH_BYTES = 4 * 1024 * 1024
_MICROSECOND = timedelta(microseconds=1)
_PARENT_REF = re.compile(r"\{parent\.([^}]+)\}")
# A stream stops when more than 1 in REJECT_RATIO records it read were rejected (once REJECT_MIN are):
# a few bad records are skipped with a warning, a systematic problem (a renamed key field) is an error.
REJECT_RATIO, REJECT_MIN = 10, 10
MAX_WARNINGS = 20  # per stream in the summary; every warning is also logged


def _stops_the_run(err: ApiError) -> bool:
    """Whether every later stream would fail the same way: the key is refused, or the API cannot be reached.

    A transport failure (connection refused or reset, no answer) surfaces only once the request's whole
    retry budget is spent; waiting that long again for each remaining stream would help no one.
    """
    return err.status == 401 or (err.status is None and isinstance(err.__cause__, OSError))


class EmptyReplaceRefused(KlxError):
    """A full refresh read no rows for a table that has some; the table and state are kept."""

    exit_code = 6


@dataclass(eq=False, slots=True)
class Reading:
    """One request sequence of a stream and how far it got: what it reads, and the newest cursor value loaded."""

    partition: PartitionPlan
    path: str
    extra: dict[str, Any]  # columns its records carry (partition values, parent keys)
    parent: str | None  # the parent it reads (child streams), for messages
    newest: datetime | None = None
    read: int = 0
    sequence: Prefetch[Request, tuple[Page, list[Any]]] | None = None  # its pages, once opened


@dataclass(slots=True)
class StreamSummary:
    """What one stream did in a run."""

    stream: str
    mode: str
    table: str
    events: int = 0  # records returned by the API (each counts as one event)
    rows: int = 0  # records that passed the stream's filters and were loaded (committed; a full refresh's once swapped in)
    pages: int = 0
    seconds: float = 0.0
    rejected: int = 0  # records read but not stored: no usable primary key, or not a record at all
    warnings: list[str] = field(default_factory=list)
    error: KlxError | None = None  # why the stream failed; its committed batches are kept
    interrupted: bool = False  # its error came from the run stopping (Ctrl-C, another stream's), not from the stream

    @property
    def failed(self) -> bool:
        """Whether the stream stopped on an error."""
        return self.error is not None
    inserted: int = 0  # rows new to the table
    updated: int = 0  # rows whose key was there and whose cursor advanced
    columns_added: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RunSummary:
    """What a whole run did."""

    job_run_id: str
    started_at: datetime
    streams: list[StreamSummary] = field(default_factory=list)

    @property
    def events(self) -> int:
        """Records returned by the API over all streams."""
        return sum(s.events for s in self.streams)

    @property
    def failed(self) -> list[StreamSummary]:
        """The streams that stopped on an error."""
        return [s for s in self.streams if s.failed]

    @property
    def rejected(self) -> int:
        """Records read but not stored, over all streams."""
        return sum(s.rejected for s in self.streams)

    @property
    def warnings(self) -> list[str]:
        """Every stream's warnings, each prefixed with its stream."""
        return [f"{s.stream}: {w}" for s in self.streams for w in s.warnings]

    @property
    def exit_code(self) -> int:
        """0 when every stream synced, else the exit code of the first failed stream's error."""
        failed = self.failed
        return failed[0].error.exit_code if failed else 0


def run(
    config: Config,
    *,
    only: tuple[str, ...] = (),
    full_refresh: bool = False,
    allow_empty: bool = False,
    window: tuple[datetime, datetime] | None = None,
    now: datetime | None = None,
    on_stream: Callable[[StreamSummary], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    events: RunEvents | None = None,
    job_run_id: str | None = None,
    interrupt: Interrupt | None = None,
) -> RunSummary:
    """One sync of the selected resources; returns what it did. Streams run side by side, those on the scarcest rate
    budgets first (start_order); the summary lists them in plan order.

    A stop `interrupt` asks for (the signal handlers of engine/commands/) ends the run as Ctrl-C does: KeyboardInterrupt.

    A stream that fails is recorded in the summary (summary.failed) and the next one runs; only an
    API that refuses the key (401) or cannot be reached (see _stops_the_run), or a warehouse that no longer
    answers (StreamSync.run), stops the whole run.

    While it runs, two settings of the whole process are its own: the garbage collector's thresholds
    (engine/collection.py) and the thread switch interval (engine/switching.py); both are put back at its end.
    """
    spec = load_spec(config, only)  # a config error must not create or touch the destination
    if window is not None:
        check_window(config, spec, only, full_refresh)
    started = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    destination = build_destination(config.destination)
    try:
        destination.claim()  # one run at a time per warehouse schema and prefix, whatever the config file
        http = HttpClient(spec.api, config.source.api_key, config.source.base_url, sleep=sleep)  # may refuse REQUESTS_CA_BUNDLE
    except BaseException:
        destination.close()
        raise
    events = events or NO_EVENTS
    # Each stream fetches as far ahead as its rate budgets and its consumer can use (engine/concurrency.py).
    http.events = flights = FlightsByStream(events, lambda name: functools.partial(budget_rate, http, spec, name))
    collecting = collection.pace()  # engine/collection.py: a full collection every few thousand records costs a sixth of a sync
    switching_before = switching.pace()  # engine/switching.py: a thread back from I/O waits less for the GIL
    # One writer thread loads every stream's batches in turn while the streams read on (WriteBehind).
    writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="klx-writer")
    try:
        names = [r.name for r in config.resources if not only or r.name in only]
        incremental = [r.name for r in config.resources if r.name in names and r.sync_mode == "incremental" and not full_refresh]
        # What they hold, read at once: columns, and the rows of those an incremental load merges into.
        destination.prepare([table_name(config, spec, name) for name in names], [table_name(config, spec, name) for name in incremental])
        states: dict[str, dict[str, Any] | None] = {}
        unreadable: dict[str, StateError] = {}
        for name in names:
            try:
                states[name] = destination.read_state(name)
            except StateError as err:  # that stream fails; its state row is left for the user to look at
                unreadable[name] = err
        dropped = forget_dropped_tables(config, spec, destination, states)
        for name, message in dropped.items():
            log.warning("stream %s: %s", name, message)
        earlier_start(config, spec, states)  # a start_date moved back: its gap below the saved cursors is read
        plan = build_plan(config, spec, states, started, only=only, full_refresh=full_refresh, window=window)
        summary = RunSummary(job_run_id=job_run_id or str(uuid.uuid4()), started_at=started)
        events.planned([(p.stream.name, p.mode) for p in plan.streams])
        writer = OneWriter(destination)
        # Set when the run stops (Ctrl-C, SIGTERM, a stream's error that stops the run): a stream that ends on an
        # error after that was cut short by the stop, not failed on its own. The stream whose error stops the
        # run has ended before it is set (run_all stops the rest once that stream's job has raised).
        stopping = threading.Event()

        def stop() -> None:
            stopping.set()
            http.close()
            if interrupt is not None and interrupt.requested:  # Ctrl-C, SIGTERM: the batch a statement runs for rolls back now
                destination.cancel()

        def sync_stream(stream_plan: StreamPlan) -> StreamSummary:
            name = stream_plan.stream.name
            events.started(name)
            if name in unreadable:
                result = StreamSummary(stream=name, mode=stream_plan.mode, table=stream_plan.table, error=unreadable[name])
            else:
                sync = StreamSync(plan, stream_plan, http, writer, states.get(name), summary.job_run_id, allow_empty=allow_empty,
                                  flights=flights[name], writes=writes)
                if name in dropped:
                    sync.summary.warnings.append(dropped[name])
                try:
                    result = sync.run()
                except BaseException as err:  # the run stops (Ctrl-C, a refused key): what this stream committed is told too
                    sync.summary.error = err if isinstance(err, KlxError) else KlxError(f"stopped: {type(err).__name__}")
                    sync.summary.interrupted = stopping.is_set()
                    events.finished(sync.summary)
                    raise
            result.interrupted = result.error is not None and stopping.is_set()
            events.finished(result)
            if on_stream:
                on_stream(result)
            return result

        # Streams run side by side (engine/concurrency.py): the rate budgets pace them, one writer loads them.
        order = start_order(spec, [p.stream.name for p in plan.streams])
        results = run_all([functools.partial(sync_stream, plan.streams[i]) for i in order], workers=MAX_STREAMS, stop=stop,
                          ready=http.answered, interrupt=interrupt)
        summary.streams.extend(result for _, result in sorted(zip(order, results), key=lambda pair: pair[0]))
        return summary
    finally:
        collection.restore(collecting)
        switching.restore(switching_before)
        http.close()
        writes.shutdown(wait=True)  # a write in flight ends (commits or rolls back) before the connection closes
        destination.close()


def start_order(spec: Spec, names: list[str]) -> list[int]:
    """The positions of `names` in the order their streams start: the scarcest rate budget first (plan order among equals).

    A run lasts at least as long as its busiest budget needs, and with more streams than run at once
    (MAX_STREAMS) a stream that starts late starts its budget late. Scarcity is the least steady rate
    the spec gives the stream's requests: its path's tier and every bucket its params select.
    """

    def steady(name: str) -> float:
        s = spec.streams[name]
        tiers = ([s.rate_limit] if s.rate_limit else []) + [b.tier for b in spec.api.buckets_for(s.params)]
        return min((spec.api.rate_limit_tiers[t].steady for t in tiers), default=math.inf)

    return sorted(range(len(names)), key=lambda i: steady(names[i]))


def budget_rate(http: HttpClient, spec: Spec, stream: str) -> float | None:
    """Requests a second the rate budgets of `stream`'s requests (its path's, and the buckets its params select) let through now."""
    s = spec.streams[stream]
    keys = [f"path:{s.path}"] + [f"bucket:{b.name}" for b in spec.api.buckets_for(s.params)]
    return rate_now([http.budgets[k] for k in keys if k in http.budgets]) if s.rate_limit else None


class StreamSync:
    """Reads one stream's partitions page by page and loads them in bounded batches."""

    def __init__(
        self,
        plan: SyncPlan,
        stream_plan: StreamPlan,
        http: HttpClient,
        destination: Destination,
        state: dict[str, Any] | None,
        job_run_id: str,
        *,
        allow_empty: bool = False,
        flights: Flights | None = None,
        writes: ThreadPoolExecutor | None = None,
    ) -> None:
        self.plan, self.sp, self.http, self.destination = plan, stream_plan, http, destination
        # A batch (one transaction) ends at batch_rows rows or batch_bytes of responses, whichever comes first.
        scale = getattr(destination, "batch_scale", 1)  # (a destination that says nothing: 1)
        self.batch_rows, self.batch_bytes = plan.api.batch_rows * scale, BATCH_BYTES * scale
        self.writes = writes  # the run's writer thread: batches load there while the stream reads on (WriteBehind)
        self.flights = flights or Flights()
        self.stream = stream_plan.stream
        self.state = state or {}
        self.job_run_id = job_run_id
        self.task_run_id = str(uuid.uuid4())
        self.loaded_at = datetime.min.replace(tzinfo=timezone.utc)  # LOAD_ORDER of the last batch taken
        self.summary = StreamSummary(stream=self.stream.name, mode=stream_plan.mode, table=stream_plan.table)
        self.replace = stream_plan.mode == "full_refresh"
        # What a full refresh's writes did, counted into the summary once finish() swaps its table in: until
        # then nothing of it is in the table (a failed one leaves the table as it was).
        self.unswapped = StreamSummary(stream=self.stream.name, mode=stream_plan.mode, table=stream_plan.table)
        self.read_rows = 0  # records read that passed the filters (the empty-refresh guard asks, before finish)
        saved = self.state.get("cursor", {}) if not self.replace else {}
        self.cursors: dict[str, str] = dict(saved)
        self.columns = ColumnMap(self.state.get("columns"), reserved=LOAD_COLUMNS)
        declared = [*(self.stream.derived or {}), *(column for mapping in self.stream.include.values() for column in mapping.values())]
        self.rows = RowBuilder(self.columns, plan.api.flatten_depth, declared)
        self.reader = RecordReader(plan.api, self.stream)
        # A replace load rebuilds the table, so only incremental loads need to delete what the filter drops.
        drop = self.stream.on_filter_miss == "delete" and not self.replace
        self.deletes = PendingDeletes(self.columns, self.stream.primary_key) if drop else None
        self.allow_empty = allow_empty
        self.first_rejection: str | None = None
        self.coverage: dict[str, Coverage] = {}  # partition key -> how far its windows were read
        self.reading: list[Reading] = []  # sequences with records loaded and not yet ended

    def run(self) -> StreamSummary:
        """Sync the stream; on an error the partial load is abandoned, the table is as before and the summary says why.

        An incremental stream keeps the batches it committed before the error (rows and cursor together).
        """
        began = time.monotonic()
        try:
            self._sync()
        except ApiError as err:
            if _stops_the_run(err):
                raise
            self.summary.error = err
        except KlxError as err:
            # A warehouse that no longer answers (the session ended, the server went away) fails every load:
            # the run stops, rather than let the other streams read the API to their end for nothing. So does a
            # destination whose claim on the schema and prefix another run took (Destination.claim).
            if isinstance(err, LockedError) or isinstance(err, WarehouseError) and not self.destination.alive():
                raise
            self.summary.error = err
        finally:
            self.summary.seconds = time.monotonic() - began
        if self.summary.rejected:
            n = self.summary.rejected
            message = f"{n} record{'' if n == 1 else 's'} rejected and not stored (first: {self.first_rejection})"
            log.warning("stream %s: %s", self.stream.name, message)
            self.summary.warnings.append(message)
        return self.summary

    def _sync(self) -> None:
        key = tuple(self.columns.name((k,)) for k in self.stream.primary_key)
        if self.stream.cursor:  # named first: its place among the columns
            self.columns.name(tuple(self.stream.cursor.field.split(".")))
        newest = self.stream.merge_cursor  # the column whose greater value replaces a key's row (spec newest_by)
        cursor = self.columns.name(tuple(newest.split("."))) if newest else None
        table = TableSpec(name=self.sp.table, primary_key=key, cursor=cursor, loaded_at=LOAD_ORDER)
        self.load = WriteBehind(self.destination.begin(self.stream.name, table, replace=self.replace), self.writes, self._written, self._committed)
        try:
            # Several request sequences fetch at once, taken in turn (engine/concurrency.py).
            for reading, answer in interleave(self._partitions(), self._open_sequence, flights=self.flights):
                if not isinstance(answer, Ended):
                    self._read_page(reading, *answer)
                    continue
                if reading in self.reading:
                    self.reading.remove(reading)
                if answer.error is None:
                    self._finished(reading)
                    continue
                err = answer.error
                if not isinstance(err, ApiError) or reading.parent is None or err.status not in self.stream.parent.skip_statuses:
                    raise err
                # Listed a moment ago, gone now (e.g. deleted between listing and reading): skip it.
                self._warn(f"parent {reading.parent} skipped: {self.plan.api.name} answered {err.status} on GET {err.url}")
            self._flush()
            if self.replace and not self.read_rows and not self.allow_empty:
                self._refuse_empty_replace()
            self.load.finish(self._state())
        except BaseException:
            try:
                self.load.abort()
            except WarehouseError as cleanup:  # it followed the failure being raised (a lost connection fails both): report that one
                log.warning("stream %s: cleaning up after the failure failed too: %s", self.stream.name, cleanup.message)
            raise
        if self.replace:  # swapped in: now its rows are the table's
            self._count_into(self.summary, self.unswapped)

    def _refuse_empty_replace(self) -> None:
        kept = self.destination.count_rows(self.sp.table)
        if kept:
            raise EmptyReplaceRefused(
                f"stream {self.stream.name}: the full refresh read no rows, so table {self.sp.table} keeps its "
                f"{kept} rows and the stream its state",
                hint="a start_date in the future or a lost API scope empties a stream; if the source really is empty, run again with `klx run --allow-empty`",
            )

    def _partitions(self) -> Iterator[Reading]:
        """Each request sequence: partition, path, the columns its records carry, and the parent it reads (child streams)."""
        if self.sp.parent is None:
            for partition in self.sp.partitions:
                yield Reading(partition, self.stream.path, dict(partition.columns), None)
            return
        # A child stream: one request sequence per parent record, which carries the parent's keys.
        parent_stream = self.sp.parent.stream
        parent_reader = RecordReader(self.plan.api, parent_stream)
        for parent_partition in self.sp.parent.partitions:
            for page, parents in self._pages(parent_stream, parent_stream.path, parent_partition.params, parent_reader, {}):
                for parent in parents:
                    if isinstance(parent, Rejected) or not parent_reader.keep(parent):
                        continue
                    child = self._child_path(parent, parent_stream, page.url)
                    if child is None:
                        continue
                    path, label = child
                    extra = {column: parent.get(source) for source, column in self.stream.parent.fields.items()}
                    for partition in self.sp.partitions:
                        yield Reading(partition, path, {**partition.columns, **extra}, label)

    def _child_path(self, parent: dict[str, Any], parent_stream: StreamSpec, url: str) -> tuple[str, str] | None:
        """The child's request path for one parent record, or None (with a warning) when a value cannot go in a path."""
        values = {}
        for field_name in _PARENT_REF.findall(self.stream.path):
            value = parent.get(field_name)
            problem = value_problem(value)
            if problem is None and str(value).strip() in (".", ".."):
                problem = f"{value!r}, a path segment that would change the request path"
            if problem:
                self._warn(f"a {parent_stream.name} record from GET {url} skipped: {field_name} is {problem}")
                return None
            # Encoded whole: a "/" or "?" in an id stays inside its path segment.
            values[field_name] = quote(str(value), safe="")
        label = ", ".join(f"{name}={value}" for name, value in values.items())
        return _PARENT_REF.sub(lambda m: values[m.group(1)], self.stream.path), f"{parent_stream.name} {label}"

    def _read_page(self, reading: Reading, page: Page, raw: list[Any]) -> None:
        records = self.reader.records(page.body, raw, reading.extra)
        if reading not in self.reading:
            self.reading.append(reading)
        reading.read += len(records)
        self.summary.pages += 1
        self.summary.events += len(records)
        self.http.events.page(self.stream.name, len(records))
        received_at = datetime.fromtimestamp(page.received_at, tz=timezone.utc)
        until = reading.partition.until
        size = page.size // max(len(records), 1)  # each record's share of the response, for the batch's byte bound
        if until is None and self.deletes is None and self.reader.all_kept(records):
            self._add_all(reading, records, received_at, size)
            past = False
        else:
            past = self._add_each(reading, records, received_at, size, page.url)
        self._advance(reading, records)
        self._check_rejections(page.url)
        if past and reading.partition.ordered and reading.sequence is not None:
            reading.sequence.close()  # in ascending cursor order every later page is past the end too: ask for none

    def _add_each(self, reading: Reading, records: list[dict[str, Any] | Rejected], received_at: datetime, size: int, url: str) -> bool:
        """Add the page's records that are kept to the batch, one by one, cutting it where it is full; whether
        a record was past the backfill's end."""
        until, past = reading.partition.until, False
        for n, record in enumerate(records, 1):
            if isinstance(record, Rejected):
                self._reject(record.reason, url)
                continue
            if until is not None and self._past(record, reading, until):
                past = True
                continue  # after a backfill's end the API could not filter by: not part of the window
            if not self.reader.keep(record):
                if self.deletes is not None and self.reader.key_problem(record) is None:
                    self.deletes.add(record)
                continue
            problem = self.reader.key_problem(record)
            if problem:
                self._reject(problem, url)
                continue
            if self.deletes is not None:
                self.deletes.discard(record)
            self.read_rows += 1
            self.rows.add(record, received_at, size)
            if self._batch_full():
                self._advance(reading, records[:n])  # a batch's state covers the records read before it, no more
                self._flush()
        return past

    def _add_all(self, reading: Reading, records: list[dict[str, Any]], received_at: datetime, size: int) -> None:
        """What _add_each does with a page whose every record is kept (RecordReader.all_kept), without a backfill
        end or deletes to look at: each record added and the batch cut after the same record, a run of records
        at a time rather than one by one (py-spy: that loop held the reader a tenth of its time)."""
        done = 0
        while done < len(records):
            # The records this batch takes before it is cut: the first count that reaches either bound.
            room = self.batch_rows - len(self.rows)
            if size:
                room = min(room, -(-(self.batch_bytes - self.rows.nbytes) // size))
            taken = records[done : done + max(room, 1)]
            self.rows.add_all(taken, received_at, size)
            self.read_rows += len(taken)
            done += len(taken)
            if self._batch_full():
                self._advance(reading, records[:done])  # a batch's state covers the records read before it, no more
                self._flush()

    def _batch_full(self) -> bool:
        """Whether the batch being built is cut here: batch_rows rows (and keys to delete), or batch_bytes of responses."""
        return len(self.rows) + len(self.deletes or ()) >= self.batch_rows or self.rows.nbytes >= self.batch_bytes

    def _past(self, record: dict[str, Any], reading: Reading, until: datetime) -> bool:
        """Whether `record`'s cursor is at or after `until` (a record without one is kept: nothing says it is later)."""
        value = self.reader.cursor_value(record, reading.partition.cursor_field)
        return value is not None and value >= until

    def _advance(self, reading: Reading, records: list[dict[str, Any] | Rejected]) -> None:
        """Move the reading's newest cursor value over `records` (every one read, kept or not)."""
        newest = self.reader.newest(records, reading.partition.cursor_field)
        if newest is not None and (reading.newest is None or newest > reading.newest):
            reading.newest = newest

    def _covering(self, reading: Reading) -> Coverage | None:
        """The coverage of the reading's partition key, made on first use; None when nothing is saved for it."""
        partition = reading.partition
        if not self.stream.cursor or partition.since is None or self.plan.window is not None:
            return None  # a backfill re-reads a window: the saved cursors stay where they are
        key = partition.key
        if key not in self.coverage:
            saved = datetime.fromisoformat(self.cursors[key]) if key in self.cursors else None
            base = partition.since if saved is None else max(saved, partition.since)
            covered = parse_covered(self.state.get("covered", {}).get(key)) if not self.replace else []
            self.coverage[key] = Coverage(saved=saved, base=base, started=self.plan.started_at, covered=covered)
        return self.coverage[key]

    def _finished(self, reading: Reading) -> None:
        """A sequence was read to its end: its window is covered (an open one up to its newest record)."""
        coverage = self._covering(reading)
        window = reading.partition.slice or (reading.partition.since, None)
        if coverage is None or (window[1] is None and reading.newest is None and reading.read):
            return  # records without a cursor value say nothing about how far the read got
        coverage.finished(reading, window, reading.newest)

    def _reject(self, reason: str, url: str) -> None:
        self.summary.rejected += 1
        self.first_rejection = self.first_rejection or reason
        if self.summary.rejected <= 5:  # enough to see the pattern without flooding the log
            self._warn(f"a record from GET {url} rejected: {reason}")

    def _check_rejections(self, url: str) -> None:
        rejected, read = self.summary.rejected, self.summary.events
        if rejected >= REJECT_MIN and rejected * REJECT_RATIO > read:
            raise ApiError(
                f"stream {self.stream.name}: {rejected} of the {read} records read were rejected "
                f"(first: {self.first_rejection}); the stream stops rather than load a fraction of them",
                stream=self.stream.name,
                url=url,
                hint="check the stream's primary_key in the spec against what the API now returns",
            )

    def _warn(self, message: str) -> None:
        log.warning("stream %s: %s", self.stream.name, message)
        if len(self.summary.warnings) < MAX_WARNINGS:
            self.summary.warnings.append(message)

    def _pages(
        self, stream: StreamSpec, path: str, params: dict[str, str], reader: RecordReader, extra: dict[str, Any]
    ) -> Iterator[tuple[Page, list[dict[str, Any]]]]:
        """Every page of one request sequence, with its normalised records; the next page is fetched while this one is processed."""
        return self._records(self._sequence(stream, path, params, reader), reader, extra)

    def _open_sequence(self, reading: Reading) -> Prefetch[Request, tuple[Page, list[Any]]]:
        reading.sequence = self._sequence(self.stream, reading.path, reading.partition.params, self.reader, eager=False)
        return reading.sequence

    def _sequence(
        self, stream: StreamSpec, path: str, params: dict[str, str], reader: RecordReader, eager: bool = True
    ) -> Prefetch[Request, tuple[Page, list[Any]]]:
        """One request sequence's pages with their raw records, fetching from now on."""
        paginator = build_paginator(stream.pagination)

        def fetch(request: Request) -> tuple[Page, list[Any]]:
            page = self._get(stream, request)
            return page, reader.page_records(page.body, page.url)

        def following(request: Request, fetched: tuple[Page, list[Any]]) -> Request | None:
            return paginator.next_request(request, fetched[0].body, len(fetched[1]))

        first = first_request(paginator, Request(self.http.url_for(path), dict(params)))
        return Prefetch(fetch, first, following, name=f"klx-{stream.name}", eager=eager)

    @staticmethod
    def _records(
        fetched: Prefetch[Request, tuple[Page, list[Any]]], reader: RecordReader, extra: dict[str, Any]
    ) -> Iterator[tuple[Page, list[dict[str, Any]]]]:
        try:
            for page, raw in fetched:
                yield page, reader.records(page.body, raw, extra)
        finally:
            fetched.close()

    def _get(self, stream: StreamSpec, request: Request) -> Page:
        # Named for the stream syncing, also when it reads its parent's pages: its requests, retries and waits count
        # for it, whatever runs beside it (under the parent's name they showed as a stream of their own, queued).
        return self.http.get(
            request.url, request.params, stream=self.stream.name, endpoint=stream.path, tier=stream.rate_limit, scopes=stream.scopes
        )

    def _flush(self) -> None:
        if not len(self.rows) and not self.deletes:
            return
        # LOAD_ORDER's value grows with every batch, even should the clock step back: the loads that write
        # batches unmatched order them by it (TableSpec.loaded_at).
        loaded = self.loaded_at = max(datetime.now(timezone.utc), self.loaded_at + _MICROSECOND)
        batch, columns = self.rows.take(
            {LOAD_ORDER: loaded, "context_sources_job_run_id": self.job_run_id, "context_sources_task_run_id": self.task_run_id}
        )
        deletes = self.deletes.take() if self.deletes is not None else None
        # A replace load only becomes visible at finish(): until then the saved state stays the old one (None:
        # not written again, which was a round trip a stream and run, a slow one on Snowflake).
        state = None if self.replace else self._state()
        self.load.write(batch, columns, state, deletes=deletes)

    def _written(self, counts: WriteCounts | None) -> None:
        if counts is not None:
            into = self.unswapped if self.replace else self.summary
            into.inserted += counts.inserted
            into.updated += counts.updated
            into.columns_added += [c for c in counts.columns_added if c not in into.columns_added]

    def _committed(self, rows: int) -> None:
        """A batch of `rows` rows committed: an incremental load's are in the table, a full refresh's in its shadow."""
        (self.unswapped if self.replace else self.summary).rows += rows

    @staticmethod
    def _count_into(summary: StreamSummary, counted: StreamSummary) -> None:
        summary.rows += counted.rows
        summary.inserted += counted.inserted
        summary.updated += counted.updated
        summary.columns_added += [c for c in counted.columns_added if c not in summary.columns_added]

    def _state(self) -> dict[str, Any]:
        """The state saved with a batch: each partition's cursor ends what is loaded without a gap below it.

        Never later than the run's start: the API holds future-dated records, and a record written later
        with an earlier timestamp must still be read next time.
        """
        if self.stream.cursor and self.stream.cursor.sort:
            # Read in cursor order: everything up to a sequence's newest value is in this batch or before it.
            for reading in self.reading:
                coverage = self._covering(reading)
                if coverage is not None and reading.newest is not None:
                    coverage.progress(reading, reading.partition.slice or (reading.partition.since, None), reading.newest)
        covered = dict(self.state.get("covered", {})) if not self.replace else {}  # keys not read this run keep theirs
        for key, coverage in self.coverage.items():
            cursor, ranges = coverage.state()
            if cursor is not None:
                self.cursors[key] = cursor.isoformat()
            covered[key] = encode_covered(ranges)
        return encode_state(self.cursors, self.columns.to_state(), covered, start=self.plan.start_date)
