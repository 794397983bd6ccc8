"""Typed API and stream specs from specs/*.yaml, validated on load (errors name file:line and key)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from .errors import SpecError
from .yaml_source import Reader, load_yaml

SYNC_MODES = ("full_refresh", "incremental")
BOUND_OPERATORS = ("gt", "gte")
FILTER_MISS_ACTIONS = ("skip", "delete")
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True, slots=True, kw_only=True)
class PaginationSpec:
    """Which paginator and its options (see paginators.py)."""

    type: str
    options: dict[str, Any]
    where: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterSyntax:
    """How predicates are written into one query parameter."""

    param: str
    predicate: str
    combine: str
    separator: str
    operators: dict[str, str]
    datetime_format: str
    string_quote: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySpec:
    """Which answers are retried and how long to wait at most."""

    statuses: tuple[int, ...]
    max_attempts: int
    retry_after_header: str | None
    max_wait_seconds: float
    request_timeout_seconds: float = 120.0  # one attempt: connect and the whole body
    total_seconds: float = 300.0  # all attempts and waits of one request


@dataclass(frozen=True, slots=True, kw_only=True)
class RateTier:
    """Requests allowed per second (burst) and per minute (steady)."""

    burst: int
    steady: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RateBucket:
    """A named budget shared by every request whose `param` lists `contains` (on top of its endpoint's tier)."""

    name: str
    tier: str
    param: str
    contains: str

    def matches(self, params: dict[str, str]) -> bool:
        """Whether a request with these query parameters counts against this bucket."""
        return self.contains in (params.get(self.param) or "").split(",")


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSpec:
    """What all streams of one API share."""

    name: str
    base_url: str
    auth_header: str
    auth_value: str
    headers: dict[str, str]
    records: str
    record_format: str
    included: str | None
    error_detail: str | None
    table: str
    flatten_depth: int
    pagination: PaginationSpec
    page_size_param: str | None
    sort_param: str | None
    sort_descending_prefix: str
    filter: FilterSyntax | None
    rate_limit_tiers: dict[str, RateTier]
    retry: RetrySpec
    where: str
    max_response_mb: float = 256.0  # decoded size of one response body
    rate_limit_buckets: tuple[RateBucket, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CursorSpec:
    """The field that orders a stream and how it bounds a request."""

    field: str
    filter_field: str
    lower: str  # gt or gte: the operator the endpoint accepts for a lower bound
    granularity: timedelta  # with gt, the bound moves back this much so the boundary value is re-read
    lookback: timedelta
    sort: bool
    where: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionDimension:
    """One axis of a stream's partitions; each value adds a filter predicate."""

    name: str
    values: tuple[Any, ...]
    filter_field: str | None
    op: str
    column: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentSpec:
    """A child stream reads once per record of its parent."""

    stream: str
    fields: dict[str, str]  # parent record field -> child column
    bounded: bool = True  # False: the parent is read in full, not from start_date
    skip_statuses: tuple[int, ...] = ()  # a child request answered so means the parent is gone: skip it


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamSpec:
    """One stream: endpoint, keys, cursor, partitions, filters."""

    name: str
    path: str
    params: dict[str, str]
    page_size: int | None
    primary_key: tuple[str, ...]
    cursor: CursorSpec | None
    sync_modes: tuple[str, ...]
    partitions: tuple[PartitionDimension, ...]
    parent: ParentSpec | None
    record_filter: str | None
    on_filter_miss: str = "skip"  # delete: an incremental read removes the key of a record the filter drops
    include: dict[str, dict[str, str]]
    pagination: PaginationSpec
    rate_limit: str | None
    scopes: tuple[str, ...]
    where: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Spec:
    """A whole spec file."""

    api: ApiSpec
    streams: dict[str, StreamSpec]
    path: Path

    @classmethod
    def from_yaml(cls, path: Path) -> "Spec":
        """Load and validate `path`."""
        raw = load_yaml(path, SpecError)
        top = Reader(raw, "", SpecError, str(path))
        api = _api(top.child("api"))
        streams_reader = top.child("streams")
        top.done()
        raw_streams = streams_reader.mapping
        streams = {}
        for name in raw_streams:
            merged = _resolve_extends(name, raw_streams, streams_reader, [])
            streams[name] = _stream(name, Reader(merged, f"streams.{name}", SpecError, streams_reader.at(name)), api)
            streams_reader.get(name, dict)
        for stream in streams.values():
            if stream.parent and stream.parent.stream not in streams:
                raise SpecError(f"streams.{stream.name}.parent.stream: unknown stream {stream.parent.stream!r}", where=stream.where)
        return cls(api=api, streams=streams, path=path)


def parse_duration(text: Any, reader: Reader, key: str) -> timedelta:
    """'1s', '15m', '6h', '3d' as a timedelta."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise reader.fail(key, f"{text!r} is not a duration like 1s, 15m, 6h or 3d")
    return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


def _jmespath(reader: Reader, key: str, default: Any = ...) -> str | None:
    expression = reader.get(key, str, default)
    if expression is None:
        return None
    try:
        jmespath.compile(expression)
    except JMESPathError as err:
        raise reader.fail(key, f"invalid jmespath {expression!r}: {err}") from err
    return expression


def _api(r: Reader) -> ApiSpec:
    auth = r.child("auth")
    headers = r.get("headers", dict, {})
    tiers_reader = r.child("rate_limit_tiers", {})
    tiers = {}
    for tier in tiers_reader.mapping:
        t = tiers_reader.child(tier)
        tiers[tier] = RateTier(burst=t.get("burst", int, required=True), steady=t.get("steady", int, required=True))
        t.done()
        tiers_reader.get(tier, dict)
    sort = r.child("sort", {})
    api = ApiSpec(
        name=r.get("name", str, required=True),
        base_url=r.get("base_url", str, required=True).rstrip("/"),
        auth_header=auth.get("header", str, required=True),
        auth_value=auth.get("value", str, required=True),
        headers={str(k): str(v) for k, v in headers.items()},
        records=_jmespath(r, "records", "@"),
        record_format=r.get("record_format", str, "plain"),
        included=_jmespath(r, "included", None),
        error_detail=_jmespath(r, "error_detail", None),
        table=r.get("table", str, "{stream}"),
        flatten_depth=r.get("flatten_depth", int, 3),
        pagination=_pagination(r.child("pagination")),
        page_size_param=r.get("page_size_param", str, None),
        sort_param=sort.get("param", str, None),
        sort_descending_prefix=sort.get("descending_prefix", str, "-"),
        filter=_filter(r.child("filter")) if r.has("filter") else None,
        rate_limit_tiers=tiers,
        retry=_retry(r.child("retry", {})),
        where=r.where,
        max_response_mb=_positive(r, "max_response_mb", 256),
        rate_limit_buckets=_buckets(r.child("rate_limit_buckets", {}), tiers),
    )
    auth.done()
    sort.done()
    r.done()
    if "{api_key}" not in api.auth_value:
        raise r.fail("auth", "auth.value must contain {api_key}")
    if api.record_format not in ("plain", "jsonapi"):
        raise r.fail("record_format", f"{api.record_format!r} is not one of jsonapi, plain")
    if "{stream}" not in api.table:
        raise r.fail("table", "must contain {stream}")
    return api


def _buckets(r: Reader, tiers: dict[str, RateTier]) -> tuple[RateBucket, ...]:
    """`rate_limit_buckets`: name -> tier, param, contains."""
    buckets = []
    for name in r.mapping:
        b = r.child(name)
        bucket = RateBucket(
            name=str(name),
            tier=b.get("tier", str, required=True),
            param=b.get("param", str, required=True),
            contains=b.get("contains", str, required=True),
        )
        b.done()
        r.get(name, dict)
        if bucket.tier not in tiers:
            raise b.fail("tier", f"unknown tier {bucket.tier!r}; known: {', '.join(sorted(tiers)) or 'none'}")
        buckets.append(bucket)
    return tuple(buckets)


def _pagination(r: Reader) -> PaginationSpec:
    kind = r.get("type", str, required=True)
    options = {k: v for k, v in r.mapping.items() if k != "type"}
    for key in options:
        r.get(key, (str, int))
    return PaginationSpec(type=kind, options=options, where=r.where)


def _filter(r: Reader) -> FilterSyntax:
    operators = r.get("operators", dict, required=True)
    syntax = FilterSyntax(
        param=r.get("param", str, required=True),
        predicate=r.get("predicate", str, required=True),
        combine=r.get("combine", str, "{predicates}"),
        separator=r.get("separator", str, ","),
        operators={str(k): str(v) for k, v in operators.items()},
        datetime_format=r.get("datetime_format", str, "%Y-%m-%dT%H:%M:%SZ"),
        string_quote=r.get("string_quote", str, "'"),
    )
    r.done()
    for needed in ("{op}", "{field}", "{value}"):
        if needed not in syntax.predicate:
            raise r.fail("predicate", f"must contain {needed}")
    return syntax


def _retry(r: Reader) -> RetrySpec:
    retry = RetrySpec(
        statuses=tuple(r.get("statuses", list, [429, 500, 502, 503, 504])),
        max_attempts=r.get("max_attempts", int, 5),
        retry_after_header=r.get("retry_after_header", str, "Retry-After"),
        max_wait_seconds=float(r.get("max_wait_seconds", (int, float), 60)),
        request_timeout_seconds=_positive(r, "request_timeout_seconds", 120),
        total_seconds=_positive(r, "total_seconds", 300),
    )
    r.done()
    if retry.max_attempts < 1:
        raise r.fail("max_attempts", "must be at least 1")
    return retry


def _positive(r: Reader, key: str, default: float) -> float:
    value = r.get(key, (int, float), default)
    if isinstance(value, bool) or not 0 < value < float("inf"):
        raise r.fail(key, "must be a positive number")
    return float(value)


def _resolve_extends(name: str, raw: dict, streams: Reader, chain: list[str]) -> dict:
    """The stream's mapping with `extends` applied: the child's keys win, `params` merge key by key."""
    body = raw[name]
    if not isinstance(body, dict):
        raise streams.fail(name, "expected a mapping")
    parent_name = body.get("extends")
    if parent_name is None:
        return body
    if parent_name not in raw:
        raise SpecError(f"streams.{name}.extends: unknown stream {parent_name!r}", where=body.at("extends"))
    if parent_name in chain or parent_name == name:
        raise SpecError(f"streams.{name}.extends: cycle through {parent_name!r}", where=body.at("extends"))
    base = _resolve_extends(parent_name, raw, streams, chain + [name])
    merged = type(body)()
    merged.where, merged.key_where = body.where, {**base.key_where, **body.key_where}
    merged.update(base)
    for key, value in body.items():
        if key == "extends":
            continue
        if key == "params" and isinstance(value, dict):
            merged[key] = {**base.get("params", {}), **value}
        else:
            merged[key] = value
    return merged


def _stream(name: str, r: Reader, api: ApiSpec) -> StreamSpec:
    modes = tuple(r.get("sync_modes", list, ["full_refresh"]))
    for mode in modes:
        if mode not in SYNC_MODES:
            raise r.fail("sync_modes", f"{mode!r} is not one of {', '.join(SYNC_MODES)}")
    cursor = _cursor(r.child("cursor"), api) if r.has("cursor") else None
    if "incremental" in modes and cursor is None:
        raise r.fail("sync_modes", "incremental needs a cursor")
    params = r.get("params", dict, {})
    page_size = r.get("page_size", int, None)
    if page_size is not None and (page_size < 1 or api.page_size_param is None):
        raise r.fail("page_size", "must be at least 1 and needs api.page_size_param")
    pk = r.get("primary_key", list, required=True)
    if not pk or not all(isinstance(k, str) for k in pk):
        raise r.fail("primary_key", "must be a non-empty list of column names")
    parent = None
    if r.has("parent"):
        p = r.child("parent")
        parent = ParentSpec(
            stream=p.get("stream", str, required=True),
            fields=dict(p.get("fields", dict, required=True)),
            bounded=p.get("bounded", bool, True),
            skip_statuses=_statuses(p, "skip_statuses"),
        )
        p.done()
    partitions = tuple(_partition(r, i, item, api) for i, item in enumerate(r.get("partitions", list, [])))
    include = r.get("include", dict, {})
    stream = StreamSpec(
        name=name,
        path=r.get("path", str, required=True),
        params={str(k): str(v) for k, v in params.items()},
        page_size=page_size,
        primary_key=tuple(pk),
        cursor=cursor,
        sync_modes=modes,
        partitions=partitions,
        parent=parent,
        record_filter=_jmespath(r, "record_filter", None),
        on_filter_miss=_on_filter_miss(r),
        include={str(rel): {str(a): str(c) for a, c in cols.items()} for rel, cols in include.items()},
        pagination=_pagination(r.child("pagination")) if r.has("pagination") else api.pagination,
        rate_limit=r.get("rate_limit", str, None),
        scopes=tuple(r.get("scopes", list, [])),
        where=r.where,
    )
    r.done()
    if stream.rate_limit is not None and stream.rate_limit not in api.rate_limit_tiers:
        known = ", ".join(sorted(api.rate_limit_tiers)) or "none"
        raise r.fail("rate_limit", f"unknown tier {stream.rate_limit!r}; known: {known}")
    if "{parent." in stream.path and parent is None:
        raise r.fail("path", "uses {parent.…} but the stream has no parent")
    return stream


def _on_filter_miss(r: Reader) -> str:
    """`skip` (default) or `delete`; delete needs a record_filter to miss."""
    action = r.get("on_filter_miss", str, "skip")
    if action not in FILTER_MISS_ACTIONS:
        raise r.fail("on_filter_miss", f"{action!r} is not one of {', '.join(FILTER_MISS_ACTIONS)}")
    if action == "delete" and not r.has("record_filter"):
        raise r.fail("on_filter_miss", "delete needs a record_filter")
    return action


def _statuses(r: Reader, key: str) -> tuple[int, ...]:
    statuses = r.get(key, list, [])
    if not all(isinstance(s, int) and not isinstance(s, bool) and 400 <= s <= 599 for s in statuses):
        raise r.fail(key, "must be a list of HTTP error statuses (400-599)")
    return tuple(statuses)


def _cursor(r: Reader, api: ApiSpec) -> CursorSpec:
    field = r.get("field", str, required=True)
    lower = r.get("lower", str, "gte")
    if lower not in BOUND_OPERATORS:
        raise r.fail("lower", f"{lower!r} is not one of {', '.join(BOUND_OPERATORS)}")
    if api.filter is not None and lower not in api.filter.operators:
        raise r.fail("lower", f"api.filter.operators has no {lower!r}")
    cursor = CursorSpec(
        field=field,
        filter_field=r.get("filter_field", str, field),
        lower=lower,
        granularity=parse_duration(r.get("granularity", str, "1s"), r, "granularity"),
        lookback=parse_duration(r.get("lookback", str, "0s"), r, "lookback"),
        sort=r.get("sort", bool, api.sort_param is not None),
        where=r.where,
    )
    r.done()
    return cursor


def _partition(r: Reader, index: int, item: Any, api: ApiSpec) -> PartitionDimension:
    p = Reader(item, f"{r.name('partitions')}[{index}]", SpecError, r.at("partitions"))
    values = p.get("values", list, required=True)
    if not values:
        raise p.fail("values", "must list at least one value")
    f = p.child("filter", None)
    dimension = PartitionDimension(
        name=p.get("name", str, required=True),
        values=tuple(values),
        filter_field=f.get("field", str, None),
        op=f.get("op", str, "eq"),
        column=p.get("column", str, None),
    )
    f.done()
    p.done()
    if dimension.filter_field and (api.filter is None or dimension.op not in api.filter.operators):
        raise p.fail("filter", f"operator {dimension.op!r} is not in api.filter.operators")
    return dimension
