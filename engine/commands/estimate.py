"""`klx plan`: before anything runs, per selected resource the requests this run makes and the least wall time
the API's rate limits allow for them. Page counts are estimates from what the warehouse already holds. A JSON object
a line with --log-format json."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from sqlglot import exp

from .. import sql
from ..destinations import build_destination
from ..errors import json_line
from ..plan import StreamPlan, build_plan, earlier_start, forget_dropped_tables, load_spec
from ..rows import LOAD_COLUMNS, ColumnMap
from ..schema import ColumnType
from ..spec import ApiSpec, RateTier, Spec
from . import config_without_secrets

LARGE_REQUESTS = 10_000  # a run needing more requests than this is called a large backfill
LARGE_DAYS = 365
SAMPLE_DAYS = 30  # an incremental stream's rate is the rows its table gained over the last 30 days of cursor


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEstimate:
    """What one stream's run will ask of the API."""

    stream: str
    mode: str
    partitions: int  # request sequences the spec's partitions make (1 without any)
    windows: int  # time slices of the cursor range over all partitions (engine/slices.py); 0: not sliced
    since: datetime | None  # the earliest lower bound over its partitions; None: the whole source
    backfill_since: datetime | None  # the same, leaving out reads the spec starts at the epoch (cursor.start: epoch)
    records: int | None  # None: no earlier data to estimate from
    basis: str  # how `records` was estimated
    requests: int
    tier: str
    seconds: float  # the least time the rate limits allow for `requests`


def least_seconds(requests: int, tier: RateTier) -> float:
    """The least seconds `requests` take within `burst` a second and `steady` a minute (sliding windows)."""
    if requests <= 1:
        return 0.0
    full_minutes, rest = divmod(requests - 1, tier.steady)
    return 60.0 * full_minutes + rest / tier.burst


def estimate(config_path: Path, *, now: datetime | None = None) -> list[StreamEstimate]:
    """The estimate of every selected stream, from saved state, start date, page sizes and the tables' contents."""
    config = config_without_secrets(config_path)
    spec = load_spec(config)
    now = now or datetime.now(timezone.utc)
    destination = build_destination(config.destination, create=False)  # it only reads
    try:
        states = {r.name: destination.read_state(r.name) for r in config.resources}
        forget_dropped_tables(config, spec, destination, states)  # as the run will
        earlier_start(config, spec, states)
        plan = build_plan(config, spec, states, now)
        per_page = _records_per_page(destination)
        return [_stream(spec, p, states.get(p.stream.name) or {}, destination, now, per_page) for p in plan.streams]
    finally:
        destination.close()


def _records_per_page(destination: Any) -> dict[str, float]:
    """Records per page of each stream in its latest finished run (klx_runs): the API's real page sizes."""
    seen: dict[str, float] = {}
    for row in destination.read_runs(20):
        if row["status"] == "done" and row["pages"] and row["stream"] not in seen:
            seen[row["stream"]] = max(row["records"] / row["pages"], 1.0)
    return seen


def _stream(spec: Spec, plan: StreamPlan, state: dict[str, Any], destination: Any, now: datetime, per_page: dict[str, float]) -> StreamEstimate:
    stream, api = plan.stream, spec.api
    bounds = [p.lower_bound for p in plan.partitions if p.lower_bound is not None]
    since = min(bounds) if bounds else None
    # A read the spec starts at the epoch (every record it filters for, whatever start_date) is as large as what it filters
    # for, not as the days since 1970, and a later start_date would not shorten it: no backfill by days.
    dated = [p.lower_bound for p in plan.partitions if p.lower_bound is not None and not p.from_epoch]
    backfill_since = min(dated) if dated else None
    table = destination.name(plan.table) if hasattr(destination, "name") else plan.table
    rows = destination.count_rows(table)
    if plan.mode == "full_refresh" or stream.cursor is None:
        records, basis = (rows, "the table's current rows") if rows else (None, "")
    else:
        records, basis = _incremental_records(plan, state, destination, table, rows, since, now)
    page = stream.page_size or per_page.get(stream.name) or float("inf")  # no page size and no history: one page each
    parents = 1
    if plan.parent is not None:
        parent_rows = destination.count_rows(destination.name(plan.parent.table) if hasattr(destination, "name") else plan.parent.table)
        parents = max(parent_rows, 1)
        parent_page = plan.parent.stream.page_size or per_page.get(plan.parent.stream.name) or float("inf")
        parent_requests = max(math.ceil(parent_rows / parent_page), 1) * len(plan.parent.partitions)
    else:
        parent_requests = 0
    partitions = len({p.key for p in plan.partitions})
    windows = sum(1 for p in plan.partitions if p.slice is not None)
    if records is None:
        requests = len(plan.partitions) * parents + parent_requests  # at least one page per request sequence
        why = basis or "nothing loaded yet"
        basis = f"volume unknown ({why}): one page per request sequence counted ({_sequences(partitions, windows)})"
    else:
        per_sequence = max(math.ceil(records / max(len(plan.partitions) * parents, 1) / page), 1)
        requests = per_sequence * len(plan.partitions) * parents + parent_requests
    tier_name, tier = _strictest(api, stream.rate_limit, stream.params)
    return StreamEstimate(
        stream=stream.name, mode=plan.mode, partitions=partitions, windows=windows, since=since, backfill_since=backfill_since,
        records=records, basis=basis,
        requests=requests, tier=tier_name, seconds=least_seconds(requests, tier) if tier else 0.0,
    )


def _sequences(partitions: int, windows: int) -> str:
    """'6 partitions', or with time slices '1 partition, 36 time windows': a window is not a partition of its own."""
    text = f"{partitions} partition{'s' if partitions != 1 else ''}"
    return f"{text}, {windows} time window{'s' if windows != 1 else ''}" if windows else text


def _incremental_records(
    plan: StreamPlan, state: dict[str, Any], destination: Any, table: str, rows: int, since: datetime | None, now: datetime
) -> tuple[int | None, str]:
    """Rows the window will read: those the table holds from `since` on, plus the days since its newest cursor at
    the rate the table gained rows over its last SAMPLE_DAYS of cursor."""
    if not rows or since is None:
        return None, ""
    columns = ColumnMap(state.get("columns"), reserved=LOAD_COLUMNS)
    cursor = columns.name(tuple(plan.stream.cursor.field.split(".")))
    cursor = destination.name(cursor) if hasattr(destination, "name") else cursor
    # An adopted table's cursor column may be text (RudderStack's loader guessed types): comparing it with a
    # timestamp fails on PostgreSQL, so such a table is not sized, as one without the column.
    dtype = destination.columns_of(table).get(cursor)
    if dtype is None:
        return None, f"the table has no {cursor} column"
    if sql.family(dtype) is not ColumnType.TIMESTAMP:
        return None, f"the table's {cursor} column is {dtype.sql(destination.dialect)}, not a timestamp"
    source = sql.table(table, destination.schema)
    count = exp.select(exp.Count(this=exp.Star())).from_(source.copy()).where(sql.col(cursor) >= exp.Placeholder())
    [(recent,)] = destination.execute("COUNT RECENT", table, count, (now - timedelta(days=SAMPLE_DAYS),))
    [(held,)] = destination.execute("COUNT SINCE", table, count, (since,))
    newest_query = exp.select(exp.cast(exp.Max(this=sql.col(cursor)), exp.DataType.build("TEXT"))).from_(source.copy())
    [(newest,)] = destination.execute("NEWEST", table, newest_query)
    newest_at = _parse(newest) or since
    days = max((now - max(newest_at, since)).total_seconds() / 86400, 0.0)
    records = held + math.ceil(recent / SAMPLE_DAYS * days)
    return records, (
        f"{held:,} rows held from {since:%Y-%m-%d} on, plus {days:,.1f} days since the newest {cursor} "
        f"at {recent / SAMPLE_DAYS:,.1f} rows a day (its last {SAMPLE_DAYS} days)"
    )


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    text = text.strip().replace(" ", "T", 1)
    if len(text) > 3 and text[-3] in "+-" and text[-2:].isdigit() and text[-6:-5] != "+":
        text += ":00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _strictest(api: ApiSpec, tier_name: str | None, params: dict[str, str]) -> tuple[str, RateTier | None]:
    """The endpoint's tier, or a named bucket the request also counts against when that one is slower."""
    if not tier_name:
        return "-", None
    best_name, best = tier_name, api.rate_limit_tiers[tier_name]
    for bucket in api.buckets_for(params):
        tier = api.rate_limit_tiers[bucket.tier]
        if tier.steady < best.steady:
            best_name, best = f"{bucket.name} ({bucket.tier})", tier
    return best_name, best


def print_plan(config_path: Path, *, as_json: bool = False, out: TextIO | None = None, now: datetime | None = None) -> int:
    """The plan table, its total, what is estimated, and warnings on large backfills; JSON objects with --log-format json."""
    out = out or sys.stdout
    estimates = estimate(config_path, now=now)
    now = now or datetime.now(timezone.utc)
    if as_json:
        for e in estimates:
            print(json_line("estimate", stream=e.stream, mode=e.mode, reads_from=e.since.isoformat() if e.since else None, records=e.records,
                            requests=e.requests, rate_limit=None if e.tier == "-" else e.tier, seconds=round(e.seconds, 1),
                            basis=e.basis or None), file=out)
        print(json_line("total", requests=sum(e.requests for e in estimates), seconds=round(sum(e.seconds for e in estimates), 1)), file=out)
        for streams, text in _warnings(estimates, now):
            print(json_line("warning", streams=streams, message=text), file=out)
        return 0
    print(f"{'stream':<20} {'mode':<13} {'reads from':<17} {'records':>10} {'requests':>9} {'limit':<22} {'at least':>10}", file=out)
    for e in estimates:
        since = f"{e.since:%Y-%m-%d %H:%M}" if e.since else "everything"
        records = f"~{e.records:,}" if e.records is not None else "?"
        print(f"{e.stream:<20} {e.mode:<13} {since:<17} {records:>10} {e.requests:>9,} {e.tier:<22} {_duration(e.seconds):>10}", file=out)
    total = sum(e.seconds for e in estimates)
    print(f"{'total':<20} {'':<13} {'':<17} {'':>10} {sum(e.requests for e in estimates):>9,} {'':<22} {_duration(total):>10}", file=out)
    print("Estimated: records, and so requests (page sizes from the spec, else from the last run); the time is the least", file=out)
    print("the rate limits allow, streams one after another, before any latency, retries or 429s.", file=out)
    for e in estimates:
        if e.basis:
            print(f"  {e.stream}: {e.basis}", file=out)
    for _, text in _warnings(estimates, now):
        print(f"warning: {text}", file=out)
    return 0


def _warnings(estimates: list[StreamEstimate], now: datetime) -> list[tuple[list[str], str]]:
    """The large backfills: (streams, what to know) each."""
    found = []
    for e in estimates:
        if e.requests > LARGE_REQUESTS:
            span = f"{(now - e.since).days:,} days since {e.since:%Y-%m-%d}" if e.since else "the whole source"
            found.append(([e.stream], f"large backfill: {e.stream} reads {span}: {e.requests:,} requests, at least {_duration(e.seconds)}; "
                                      "a later start_date, or `klx run --streams` one stream at a time, splits it"))
    unsized: dict[str, list[str]] = {}  # each stream's own start: streams reading from the same day share a line
    for e in estimates:
        if e.records is None and e.backfill_since is not None and (now - e.backfill_since).days > LARGE_DAYS:
            unsized.setdefault(f"{(now - e.backfill_since).days:,} days since {e.backfill_since:%Y-%m-%d}", []).append(e.stream)
    for span, streams in unsized.items():
        found.append((streams, f"large backfill: {', '.join(streams)} read {span} "
                               "with nothing loaded yet to size them; a first run over years of events can take hours"))
    return found


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
