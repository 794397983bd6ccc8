"""Config + spec + saved state -> SyncPlan: which requests each stream makes, parents first. Pure."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .config import Config
from .errors import ConfigError
from .slices import Window, parse_covered, windows
from .spec import ApiSpec, CursorSpec, FilterSyntax, Spec, StreamSpec
from .state import without_cursors
from .yaml_source import did_you_mean


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionPlan:
    """One request sequence: the first page's query and where its cursor is kept."""

    key: str  # state key, "" when the stream has no partitions
    params: dict[str, str]
    lower_bound: datetime | None  # records at or after this are read
    columns: dict[str, Any]  # values added to every record (partition columns)
    cursor_field: str | None = None  # the record cursor this partition saves, when a partition value overrides the stream's
    slice: Window | None = None  # a time slice of the partition's range: [start, end), end None: open (engine/slices.py)
    since: datetime | None = None  # where the partition's read begins (lower_bound unless sliced)
    # A backfill's end the API cannot filter by (cursor.upper none): records whose cursor is at or after it are dropped as read.
    until: datetime | None = None
    ordered: bool = False  # pages come in ascending order of the cursor kept (cursor.sort on its own field): reading may stop at `until`
    from_epoch: bool = False  # begins at the epoch because the spec reads every record (cursor.start: epoch), not start_date


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamPlan:
    """How one stream is read and where it lands."""

    stream: StreamSpec
    mode: str
    table: str
    partitions: tuple[PartitionPlan, ...]
    parent: "StreamPlan | None"  # read in full (from start_date unless parent.bounded is false) to enumerate the child's requests


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncPlan:
    """Everything one run does."""

    api: ApiSpec
    streams: tuple[StreamPlan, ...]
    started_at: datetime
    window: tuple[datetime, datetime] | None = None  # a backfill: [start, end) re-read, saved cursors left as they are
    start_date: datetime | None = None  # the config's: saved with the cursors, which count from it (earlier_start)


def build_plan(
    config: Config,
    spec: Spec,
    states: dict[str, dict[str, Any] | None],
    now: datetime,
    *,
    only: tuple[str, ...] = (),
    full_refresh: bool = False,
    window: tuple[datetime, datetime] | None = None,
) -> SyncPlan:
    """Plan a run at time `now` given each stream's saved state; with `window`, a backfill of the incremental streams."""
    validate_selection(config, spec, only)
    if window is not None:
        check_window(config, spec, only, full_refresh)
        start = config.source.start_date
        if window[1] <= start:  # nothing before start_date is replicated: such a window has nothing to read
            raise ConfigError(f"--start/--end: the window ends at {window[1]:%Y-%m-%d %H:%M:%S}, not after start_date {start:%Y-%m-%d}; nothing before start_date is read")
        window = (max(window[0], start), window[1])  # (a window from before start_date reads from start_date)
    plans = []
    for resource in config.resources:
        if only and resource.name not in only:
            continue
        stream = spec.streams[resource.name]
        mode = "full_refresh" if full_refresh else resource.sync_mode
        if window is not None:
            if mode != "incremental":
                continue  # a window of a replaced table would drop every row outside it
            plans.append(_stream_plan(config, spec, stream, mode, {}, timedelta(0), now=now, window=window))
            continue
        state = (states.get(resource.name) or {}) if mode == "incremental" else {}
        lookback = resource.lookback if resource.lookback is not None else (stream.cursor.lookback if stream.cursor else timedelta(0))
        plans.append(_stream_plan(config, spec, stream, mode, state.get("cursor", {}), lookback, now=now, covered=state.get("covered", {})))
    # Parents before children so a parent's table is fresh when the child's run reports.
    plans.sort(key=lambda p: p.parent is not None)
    return SyncPlan(api=spec.api, streams=tuple(plans), started_at=now, window=window, start_date=config.source.start_date)


def check_window(config: Config, spec: Spec, only: tuple[str, ...], full_refresh: bool) -> None:
    """A backfill re-reads a window of incremental streams; refuse what it cannot do."""
    if full_refresh:
        raise ConfigError("--start/--end re-read a window of incremental streams; --full-refresh replaces whole tables: use one or the other")
    chosen = [r for r in config.resources if not only or r.name in only]
    # A stream whose API takes no upper bound (cursor.upper none) ends the window on the client, and needs no less-than.
    bounded_above = any(c.upper == "lt" for r in chosen if r.sync_mode == "incremental" for c in _cursors(spec.streams[r.name]))
    if spec.api.filter is None or (bounded_above and "lt" not in spec.api.filter.operators):
        raise ConfigError(f"--start/--end need a less-than filter, which the spec's API ({spec.api.name}) does not declare")
    for resource in chosen:
        if only and resource.sync_mode != "incremental":
            raise ConfigError(f"--streams: {resource.name!r} is {resource.sync_mode}, and a backfill window applies to incremental streams only")
    if not any(r.sync_mode == "incremental" for r in chosen):
        raise ConfigError("--start/--end: no incremental stream selected; a backfill window applies to incremental streams only")


def _cursors(stream: StreamSpec) -> list[CursorSpec]:
    """The cursors `stream`'s requests use: its own and its partition values' (partitions[].cursors)."""
    own = [stream.cursor] if stream.cursor else []
    return own + [c for d in stream.partitions for c in (d.cursors or {}).values()]


def load_spec(config: Config, only: tuple[str, ...] = ()) -> Spec:
    """The config's spec, checked against its resources before any I/O, with each resource's `leave_out` applied."""
    spec = Spec.from_yaml(config.source.spec)
    validate_selection(config, spec, only)
    streams = dict(spec.streams)
    for resource in config.resources:
        if resource.leave_out:
            streams[resource.name] = left_out(streams[resource.name], resource.leave_out)
    return dataclasses.replace(spec, streams=streams)


def left_out(stream: StreamSpec, items: tuple[str, ...]) -> StreamSpec:
    """`stream` whose requests go without `items` (its spec's `optional`): each removed from its comma-list parameter."""
    params = dict(stream.params)
    for item in items:
        param = stream.optional[item]
        kept = [value for value in params[param].split(",") if value != item]
        if kept:
            params[param] = ",".join(kept)
        else:
            del params[param]
    return dataclasses.replace(stream, params=params)


def validate_selection(config: Config, spec: Spec, only: tuple[str, ...] = ()) -> None:
    """Raise ConfigError when the config's resources or `only` (--streams) don't fit the spec; run before any I/O."""
    for resource in config.resources:
        stream = spec.streams.get(resource.name)
        if stream is None:
            raise ConfigError(f"resources.{resource.name}: unknown resource; {did_you_mean(resource.name, spec.streams)}", where=resource.where)
        if resource.sync_mode not in stream.sync_modes:
            raise ConfigError(
                f"resources.{resource.name}: {resource.sync_mode} is not supported; use {' or '.join(stream.sync_modes)}",
                where=resource.where,
            )
        for item in resource.leave_out:
            if item not in stream.optional:
                offered = ", ".join(sorted(stream.optional)) or "nothing"
                raise ConfigError(f"resources.{resource.name}.leave_out: {item!r} cannot be left out; this resource offers {offered}",
                                  where=resource.where)
    selected = [r.name for r in config.resources]
    for name in only:
        if name in spec.streams and name not in selected:
            raise ConfigError(f"--streams: {name!r} is not selected under resources in {config.path}; selected: {', '.join(selected)}")
        if name not in selected:
            raise ConfigError(f"--streams: {name!r} is not among the resources in {config.path}; {did_you_mean(name, selected)}")


def _stream_plan(
    config: Config, spec: Spec, stream: StreamSpec, mode: str, saved: dict[str, str], lookback: timedelta,
    *, bounded: bool = True, now: datetime | None = None, window: tuple[datetime, datetime] | None = None,
    covered: dict[str, list[list[str]]] | None = None,
) -> StreamPlan:
    start = config.source.start_date
    parent = None
    if stream.parent:
        parent_stream = spec.streams[stream.parent.stream]
        parent = _stream_plan(config, spec, parent_stream, "full_refresh", {}, timedelta(0), bounded=stream.parent.bounded)
    partitions = []
    dimensions = stream.partitions
    for combo in _combinations(stream):
        key, cursor = _partition(stream, combo)
        lower = None
        from_epoch = False
        if cursor and bounded:
            # cursor.start: where a partition without a saved cursor begins (start_date, every record, or now).
            # The epoch bound renders as the epoch itself: a strict bound moves back one granule when sent.
            epoch = EPOCH + (cursor.granularity if cursor.lower == "gt" else timedelta(0))
            lower = {"start_date": start, "epoch": epoch, "run": now or start}[cursor.start]
            from_epoch = cursor.start == "epoch" and key not in saved
            if key in saved:
                back = datetime.fromisoformat(saved[key]) - lookback
                lower = max(start, back) if cursor.start == "start_date" else back
        predicates = [
            (d.filter_field, d.op, value) for d, value in zip(dimensions, combo) if d.filter_field is not None
        ]
        end = None
        if window is not None and cursor:
            lower, end = window
            from_epoch = False
        columns = {d.column: value for d, value in zip(dimensions, combo) if d.column}
        cursor_field = cursor.field if cursor is not None and cursor is not stream.cursor else None
        if cursor and cursor.slice and lower is not None:
            # Time slices: each window its own request sequence, bounded on both sides (an open last one).
            read = parse_covered((covered or {}).get(key)) if window is None else []
            for piece in windows(lower, now or lower, cursor.slice, end=end, covered=read, lookback=lookback):
                bounds = [(cursor.filter_field, "lt", piece[1])] if piece[1] is not None else []
                partitions.append(PartitionPlan(
                    key=key, params=request_params(spec.api, stream, piece[0], predicates + bounds, cursor=cursor),
                    lower_bound=piece[0], columns=columns, cursor_field=cursor_field, slice=piece, since=lower,
                    from_epoch=from_epoch,
                ))
            continue
        until = None
        if end is not None and cursor.upper == "lt":
            predicates.append((cursor.filter_field, "lt", end))
        elif end is not None:
            until = end  # the API takes no upper bound: the run drops what it reads from `end` on
        partitions.append(
            PartitionPlan(
                key=key,
                params=request_params(spec.api, stream, lower, predicates, cursor=cursor),
                lower_bound=lower,
                columns=columns,
                cursor_field=cursor_field,
                since=lower,
                until=until,
                ordered=until is not None and cursor.sort and cursor.filter_field == cursor.field,
                from_epoch=from_epoch,
            )
        )
    return StreamPlan(
        stream=stream,
        mode=mode,
        table=table_name(config, spec, stream.name),
        partitions=tuple(partitions),
        parent=parent,
    )


def _combinations(stream: StreamSpec) -> list[tuple[Any, ...]]:
    """Every combination of the stream's partition values (one empty one without partitions)."""
    return list(itertools.product(*(d.values for d in stream.partitions))) if stream.partitions else [()]


def _partition(stream: StreamSpec, combo: tuple[Any, ...]) -> tuple[str, CursorSpec | None]:
    """A combination's state key, and the cursor it reads by: a partition value's own (spec partitions[].cursors), else the stream's."""
    dimensions = stream.partitions
    key = ",".join(f"{d.name}={_text(v)}" for d, v in zip(dimensions, combo))
    cursor = next((d.cursors[_text(v)] for d, v in zip(dimensions, combo) if d.cursors and _text(v) in d.cursors), stream.cursor)
    return key, cursor


def earlier_start(config: Config, spec: Spec, states: dict[str, dict[str, Any] | None]) -> None:
    """Where start_date moved before the one a stream's cursors count from (state "start"), nothing between the two
    was read: each partition read from start_date keeps [old start, cursor] as a covered range instead of its cursor,
    so the run reads from the new start_date (a sliced read only the gap, then from the range's lookback on; any
    other all of it again, merged on the key). Partitions read from the epoch or the run's start are left as they are."""
    start = config.source.start_date
    for name, state in states.items():
        if not state or "start" not in state or start >= (counted := datetime.fromisoformat(state["start"])):
            continue
        stream = spec.streams[name]
        cursors, covered = dict(state.get("cursor", {})), dict(state.get("covered", {}))
        for combo in _combinations(stream):
            key, cursor = _partition(stream, combo)
            if cursor is None or cursor.start != "start_date" or key not in cursors:
                continue
            reached = cursors.pop(key)
            kept = [[counted.isoformat(), reached]] if counted < datetime.fromisoformat(reached) else []
            covered[key] = kept + covered.get(key, [])
        states[name] = {**state, "cursor": cursors, "covered": covered}


def request_params(
    api: ApiSpec, stream: StreamSpec, lower: datetime | None, predicates: list[tuple[str, str, Any]],
    *, cursor: CursorSpec | None = None,
) -> dict[str, str]:
    """The first page's query parameters: the stream's own, page size, filter and sort (by `cursor`, default the stream's)."""
    params = dict(stream.params)
    if stream.page_size is not None and api.page_size_param:
        params[api.page_size_param] = str(stream.page_size)
    cursor = cursor or stream.cursor
    bound: list[tuple[str, str, Any]] = []
    if cursor and lower is not None and api.filter is not None:
        # A strict operator would skip records at the bound itself; move the bound back one granule
        # so they are re-read and MERGE keeps them once.
        value = lower - cursor.granularity if cursor.lower == "gt" else lower
        bound.append((cursor.filter_field, cursor.lower, value))
    if api.filter is not None and (bound or predicates):  # spec.py refuses partition filters without api.filter
        params[api.filter.param] = render_filter(api.filter, bound + predicates)
    if cursor and cursor.sort and api.sort_param:
        params[api.sort_param] = cursor.filter_field
    return params


def render_filter(syntax: FilterSyntax, predicates: list[tuple[str, str, Any]]) -> str:
    """Predicates in the API's filter language, combined when there are several."""
    parts = [
        syntax.predicate.format(op=syntax.operators[op], field=field, value=_literal(syntax, value))
        for field, op, value in predicates
    ]
    if len(parts) == 1:
        return parts[0]
    return syntax.combine.format(predicates=syntax.separator.join(parts))


def _literal(syntax: FilterSyntax, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime(syntax.datetime_format)
    if isinstance(value, (int, float)):
        return str(value)
    quote = syntax.string_quote
    return quote + str(value).replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def forget_dropped_tables(config: Config, spec: Spec, destination: Any, states: dict[str, dict[str, Any] | None]) -> dict[str, str]:
    """Forget the cursors in `states` of each stream whose table is gone (dropped or renamed since its state was
    saved; `destination.has_table` says): read from those, the table would come back holding only what changed
    since. The stream is read from its start instead, as a first sync, its column names kept. Returns
    stream -> the warning that says so."""
    dropped = {}
    for name, state in states.items():
        if not (state and state.get("cursor") and _loaded_records(spec.streams[name], state)):
            continue  # (a stream that never loaded a record made no table: its cursors stand)
        if not destination.has_table(table := table_name(config, spec, name)):
            states[name] = without_cursors(state)
            dropped[name] = f"table {table} is missing though the state has cursors for it: read again from the start, as a first sync"
    return dropped


def _loaded_records(stream: StreamSpec, state: dict[str, Any]) -> bool:
    """Whether the column map in `state` holds a column only a record names (not the key, cursor or newest_by
    column, named before any): then a batch was committed with it, and the table made."""
    first = {(field,) for field in stream.primary_key}
    first |= {tuple(field.split(".")) for field in (stream.cursor.field if stream.cursor else None, stream.merge_cursor) if field}
    return any(tuple(path) not in first for path, *_ in state.get("columns") or [])


def table_name(config: Config, spec: Spec, stream: str) -> str:
    """The table `stream` loads: the config's prefix, then the spec's table template."""
    return config.destination.table_prefix + spec.api.table.format(stream=stream)
