"""Wiring: plan -> pages -> records -> rows -> warehouse, one stream after another; the run summary."""

from __future__ import annotations

import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator
from urllib.parse import quote

from .config import Config
from .destinations import build_destination
from .destinations.base import Destination
from .schema import TableSpec
from .http import HttpClient, Page
from .paginators import Request, build_paginator, first_request
from .plan import PartitionPlan, StreamPlan, SyncPlan, build_plan, validate_selection
from .deletes import PendingDeletes
from .records import RecordReader
from .rows import LOAD_COLUMNS, ColumnMap, RowBuilder
from .spec import Spec, StreamSpec

log = logging.getLogger("klx.run")
BATCH_ROWS = 5000  # rows per warehouse transaction: bounds memory, keeps commits frequent
_PARENT_REF = re.compile(r"\{parent\.([^}]+)\}")


@dataclass(slots=True)
class StreamSummary:
    """What one stream did in a run."""

    stream: str
    mode: str
    table: str
    events: int = 0  # records returned by the API (each counts as one event)
    rows: int = 0  # records that passed the stream's filters and were loaded
    pages: int = 0
    seconds: float = 0.0


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


def run(
    config: Config,
    *,
    only: tuple[str, ...] = (),
    full_refresh: bool = False,
    now: datetime | None = None,
    on_stream: Callable[[StreamSummary], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunSummary:
    """One sync of the selected resources; returns what it did. Streams run one after another."""
    spec = Spec.from_yaml(config.source.spec)
    validate_selection(config, spec, only)  # a config error must not create or touch the destination
    started = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    destination = build_destination(config.destination)
    http = HttpClient(spec.api, config.source.api_key, config.source.base_url, sleep=sleep)
    try:
        names = [r.name for r in config.resources if not only or r.name in only]
        states = {name: destination.read_state(name) for name in names}
        plan = build_plan(config, spec, states, started, only=only, full_refresh=full_refresh)
        summary = RunSummary(job_run_id=str(uuid.uuid4()), started_at=started)
        for stream_plan in plan.streams:
            result = StreamSync(plan, stream_plan, http, destination, states.get(stream_plan.stream.name), summary.job_run_id).run()
            summary.streams.append(result)
            if on_stream:
                on_stream(result)
        return summary
    finally:
        http.close()
        destination.close()


class StreamSync:
    """Reads one stream's partitions page by page and loads them in bounded batches."""

    def __init__(
        self, plan: SyncPlan, stream_plan: StreamPlan, http: HttpClient, destination: Destination, state: dict[str, Any] | None, job_run_id: str
    ) -> None:
        self.plan, self.sp, self.http, self.destination = plan, stream_plan, http, destination
        self.stream = stream_plan.stream
        self.state = state or {}
        self.job_run_id = job_run_id
        self.task_run_id = str(uuid.uuid4())
        self.summary = StreamSummary(stream=self.stream.name, mode=stream_plan.mode, table=stream_plan.table)
        self.replace = stream_plan.mode == "full_refresh"
        saved = self.state.get("cursor", {}) if not self.replace else {}
        self.cursors: dict[str, str] = dict(saved)
        self.columns = ColumnMap(self.state.get("columns"), reserved=LOAD_COLUMNS)
        self.rows = RowBuilder(self.columns, plan.api.flatten_depth)
        self.reader = RecordReader(plan.api, self.stream)
        # A replace load rebuilds the table, so only incremental loads need to delete what the filter drops.
        drop = self.stream.on_filter_miss == "delete" and not self.replace
        self.deletes = PendingDeletes(self.columns, self.stream.primary_key) if drop else None

    def run(self) -> StreamSummary:
        """Sync the stream; on any error the partial load is abandoned and the table is as before."""
        began = time.monotonic()
        key = tuple(self.columns.name((k,)) for k in self.stream.primary_key)
        cursor = self.columns.name(tuple(self.stream.cursor.field.split("."))) if self.stream.cursor else None
        table = TableSpec(name=self.sp.table, primary_key=key, cursor=cursor)
        self.load = self.destination.begin(self.stream.name, table, replace=self.replace)
        try:
            for partition, path, extra in self._partitions():
                self._read_partition(partition, path, extra)
            self._flush()
            self.load.finish(self._state())
        except BaseException:
            self.load.abort()
            raise
        self.summary.seconds = time.monotonic() - began
        return self.summary

    def _partitions(self) -> Iterator[tuple[PartitionPlan, str, dict[str, Any]]]:
        if self.sp.parent is None:
            for partition in self.sp.partitions:
                yield partition, self.stream.path, dict(partition.columns)
            return
        # A child stream: one request sequence per parent record, which carries the parent's keys.
        parent_stream = self.sp.parent.stream
        parent_reader = RecordReader(self.plan.api, parent_stream)
        for parent_partition in self.sp.parent.partitions:
            for _, parents in self._pages(parent_stream, parent_stream.path, parent_partition.params, parent_reader, {}):
                for parent in filter(parent_reader.keep, parents):
                    path = _PARENT_REF.sub(lambda m: quote(str(parent.get(m.group(1), "")), safe=""), self.stream.path)
                    extra = {column: parent.get(source) for source, column in self.stream.parent.fields.items()}
                    for partition in self.sp.partitions:
                        yield partition, path, {**partition.columns, **extra}

    def _read_partition(self, partition: PartitionPlan, path: str, extra: dict[str, Any]) -> None:
        newest = None
        for page, records in self._pages(self.stream, path, partition.params, self.reader, extra):
            self.summary.pages += 1
            self.summary.events += len(records)
            received_at = datetime.fromtimestamp(page.received_at, tz=timezone.utc)
            for record in records:
                value = self.reader.cursor_value(record)
                if value is not None and (newest is None or value > newest):
                    newest = value
                if not self.reader.keep(record):
                    if self.deletes is not None:
                        self.deletes.add(record)
                    continue
                if self.deletes is not None:
                    self.deletes.discard(record)
                self.summary.rows += 1
                self.rows.add(record, received_at)
                if len(self.rows) + len(self.deletes or ()) >= BATCH_ROWS:
                    if self.stream.cursor and self.stream.cursor.sort and newest:
                        # Sorted ascending: everything up to `newest` is in this batch or before it.
                        self._advance(partition.key, newest)
                    self._flush()
        if self.stream.cursor and newest:
            self._advance(partition.key, newest)

    def _advance(self, key: str, newest: datetime) -> None:
        # Never save a cursor later than the run's start: the API holds future-dated records, and a
        # record written later with an earlier timestamp must still be read next time.
        capped = min(newest, self.plan.started_at)
        previous = self.cursors.get(key)
        if previous is None or datetime.fromisoformat(previous) < capped:
            self.cursors[key] = capped.isoformat()

    def _pages(
        self, stream: StreamSpec, path: str, params: dict[str, str], reader: RecordReader, extra: dict[str, Any]
    ) -> Iterator[tuple[Page, list[dict[str, Any]]]]:
        """Every page of one request sequence, with its normalised records.

        The next page is fetched in the background while the caller processes this one: the API's
        latency and our row building overlap, and at most one page waits in memory.
        """
        paginator = build_paginator(stream.pagination)
        request: Request | None = first_request(paginator, Request(self.http.url_for(path), dict(params)))
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"klx-{stream.name}")
        try:
            pending = pool.submit(self._get, stream, request)
            while pending is not None:
                page = pending.result()
                raw = reader.page_records(page.body, page.url)
                request = paginator.next_request(request, page.body, len(raw))
                pending = pool.submit(self._get, stream, request) if request is not None else None
                yield page, list(reader.records(page.body, raw, extra))
        finally:
            # Never wait for a request still in flight (Ctrl-C, a failed batch): HttpClient.close() cuts it.
            pool.shutdown(wait=False, cancel_futures=True)

    def _get(self, stream: StreamSpec, request: Request) -> Page:
        return self.http.get(
            request.url, request.params, stream=stream.name, endpoint=stream.path, tier=stream.rate_limit, scopes=stream.scopes
        )

    def _flush(self) -> None:
        if not len(self.rows) and not self.deletes:
            return
        batch, columns = self.rows.take(
            {"uuid_ts": datetime.now(timezone.utc), "context_sources_job_run_id": self.job_run_id, "context_sources_task_run_id": self.task_run_id}
        )
        deletes = self.deletes.take() if self.deletes is not None else None
        # A replace load only becomes visible at finish(): until then the saved state must stay the old one.
        state = self.state if self.replace else self._state()
        if deletes is None:
            self.load.write(batch, columns, state)
        else:
            self.load.write(batch, columns, state, deletes=deletes)

    def _state(self) -> dict[str, Any]:
        return {"cursor": dict(self.cursors), "columns": self.columns.to_state()}
