"""Typed API and stream specs from specs/*.yaml, validated on load (errors name file:line and key)."""

from __future__ import annotations

import dataclasses
import re
import string
from dataclasses import dataclass
from datetime import date as _date, timedelta
from pathlib import Path
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from .config import url_problem
from .errors import SpecError
from .slices import check_step
from .yaml_source import Reader, did_you_mean, load_yaml, show

SYNC_MODES = ("full_refresh", "incremental")
BOUND_OPERATORS = ("gt", "gte")
UPPER_BOUNDS = ("lt", "none")  # how a request bounds the cursor from above: less-than, or not at all
_SLICE_UNBOUNDED = "needs a less-than filter to end each window, but cursor.upper is none (the API bounds this cursor from below only)"
FILTER_MISS_ACTIONS = ("skip", "delete")
_DOTTED = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*(\.[A-Za-z_$][A-Za-z0-9_$-]*)*")  # a field path: a.b.c
CURSOR_STARTS = ("start_date", "epoch", "run")
_REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110 token)
# The IETF draft's headers describing an endpoint's steady window: limit, remaining, seconds to reset.
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
MAX_DURATION = timedelta(days=3650)  # lookbacks and granularities beyond ten years are mistakes (and overflow)
MAX_PAGE_SIZE = 100_000
_PATH_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PaginationSpec:
    """Which paginator and its options (see paginators.py)."""

    type: str
    options: dict[str, Any]  # a Located mapping when loaded from YAML: each option keeps its line
    where: str
    context: str = "pagination"  # dotted name in messages: api.pagination, streams.<name>.pagination


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
    batch_rows: int = 5000  # rows per warehouse transaction: bounds memory, keeps commits frequent
    rate_limit_buckets: tuple[RateBucket, ...] = ()
    revision_header: str | None = None  # the header whose ISO-date value `params_since` is checked against
    # The response headers saying the endpoint's steady window: (limit, remaining, seconds to reset); None: not read.
    rate_limit_headers: tuple[str, str, str] | None = RATE_LIMIT_HEADERS
    revision_where: str = ""  # file:line of that header's value

    def buckets_for(self, params: dict[str, str]) -> list[RateBucket]:
        """The named rate buckets a request with these query parameters also counts against."""
        return [bucket for bucket in self.rate_limit_buckets if bucket.matches(params)]


@dataclass(frozen=True, slots=True, kw_only=True)
class CursorSpec:
    """The field that orders a stream and how it bounds a request."""

    field: str
    filter_field: str
    lower: str  # gt or gte: the operator the endpoint accepts for a lower bound
    upper: str = "lt"  # lt, or none: the endpoint takes no upper bound (a backfill drops later records on the client)
    granularity: timedelta  # with gt, the bound moves back this much so the boundary value is re-read
    lookback: timedelta
    sort: bool
    where: str
    start: str = "start_date"  # first read from: start_date, epoch (every record) or run (the run's start)
    slice: timedelta | None = None  # read the range as windows of this step, side by side (engine/slices.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionDimension:
    """One axis of a stream's partitions; each value adds a filter predicate."""

    name: str
    values: tuple[Any, ...]
    filter_field: str | None
    op: str
    column: str | None
    cursors: dict[str, CursorSpec] | None = None  # value (as text) -> the cursor its requests use instead


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentSpec:
    """A child stream reads once per record of its parent."""

    stream: str
    fields: dict[str, str]  # parent record field -> child column
    bounded: bool = True  # False: the parent is read in full, not from start_date
    skip_statuses: tuple[int, ...] = ()  # a child request answered so means the parent is gone: skip it
    where: str = ""  # file:line of parent.stream


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
    # The record field (a dotted path) whose greater value replaces a key's row when it is loaded again; None: the
    # cursor's field. For records the API changes without moving their cursor (a derived column that does move).
    newest_by: str | None = None
    include: dict[str, dict[str, str]]
    derived: dict[str, str] | None = None  # column -> jmespath over the record and `included` (engine/derive.py)
    optional: dict[str, str] = dataclasses.field(default_factory=dict)  # item a config may leave out -> its comma-list param
    pagination: PaginationSpec
    rate_limit: str | None
    scopes: tuple[str, ...]
    where: str

    @property
    def merge_cursor(self) -> str | None:
        """The field whose greater value wins when a key is loaded again (the table's MERGE), or None: the later row."""
        return self.newest_by or (self.cursor.field if self.cursor is not None else None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Spec:
    """A whole spec file."""

    api: ApiSpec
    streams: dict[str, StreamSpec]
    path: Path

    @classmethod
    def from_yaml(cls, path: Path) -> "Spec":
        """Load and validate `path`."""
        return cls.from_data(load_yaml(path, SpecError), path)

    @classmethod
    def from_data(cls, raw: Any, path: Path) -> "Spec":
        """Validate an already parsed spec file (mappings as yaml_source.Located carry file:line)."""
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
        _check_parents(streams)
        return cls(api=api, streams=streams, path=path)


def _check_parents(streams: dict[str, "StreamSpec"]) -> None:
    """Every parent exists, no stream is its own ancestor, and parents nest one level (run.py reads them so)."""
    for stream in streams.values():
        if stream.parent is None:
            continue
        name = f"streams.{stream.name}.parent.stream"
        where = stream.parent.where or stream.where
        if stream.parent.stream not in streams:
            raise SpecError(f"{name}: unknown stream {stream.parent.stream!r}; {did_you_mean(stream.parent.stream, streams)}", where=where)
        chain = [stream.name]
        current = streams[stream.parent.stream]
        while current.parent is not None and current.name not in chain and current.parent.stream in streams:
            chain.append(current.name)
            current = streams[current.parent.stream]
        if current.name in chain:
            raise SpecError(f"{name}: parents form a loop: {' -> '.join(chain + [current.name])}", where=where)
        parent = streams[stream.parent.stream]
        if parent.parent is not None:
            raise SpecError(f"{name}: {parent.name!r} has a parent itself; parents nest one level only", where=where)


def parse_duration(text: Any, reader: Reader, key: str) -> timedelta:
    """'1s', '15m', '6h', '3d' as a timedelta."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise reader.fail(key, f"{text!r} is not a duration like 1s, 15m, 6h or 3d")
    amount, unit = int(match.group(1)), _DURATION_UNITS[match.group(2)]
    if amount > MAX_DURATION / timedelta(**{unit: 1}):
        raise reader.fail(key, f"{text!r} is longer than {MAX_DURATION.days} days")
    return timedelta(**{unit: amount})


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
        tiers[tier] = RateTier(burst=_int(t, "burst", ..., 1, 1_000_000), steady=_int(t, "steady", ..., 1, 60_000_000))
        t.done()
        tiers_reader.get(tier, dict)
    sort = r.child("sort", {})
    api = ApiSpec(
        name=r.get("name", str, required=True),
        base_url=_base_url(r),
        auth_header=_header_text(auth, "header", auth.get("header", str, required=True)),
        auth_value=_template(auth, "value", ..., {"api_key"}),
        headers={str(k): _header_text(r, "headers", v, k, headers) for k, v in headers.items()},
        records=_jmespath(r, "records", "@"),
        record_format=r.get("record_format", str, "plain"),
        included=_jmespath(r, "included", None),
        error_detail=_jmespath(r, "error_detail", None),
        table=_template(r, "table", "{stream}", {"stream"}),
        flatten_depth=_int(r, "flatten_depth", 3, 0, 10),
        pagination=_pagination(r.child("pagination")),
        page_size_param=r.get("page_size_param", str, None),
        sort_param=sort.get("param", str, None),
        sort_descending_prefix=sort.get("descending_prefix", str, "-"),
        filter=_filter(r.child("filter")) if r.has("filter") else None,
        rate_limit_tiers=tiers,
        retry=_retry(r.child("retry", {})),
        where=r.where,
        max_response_mb=_positive(r, "max_response_mb", 256),
        batch_rows=_int(r, "batch_rows", 5000, 1, 10_000_000),
        rate_limit_buckets=_buckets(r.child("rate_limit_buckets", {}), tiers),
        revision_header=_revision_header(r, headers),
        rate_limit_headers=_rate_limit_headers(r),
        revision_where=_revision_where(r, headers),
    )
    auth.done()
    sort.done()
    r.done()
    if api.record_format not in ("plain", "jsonapi"):
        raise r.fail("record_format", f"{api.record_format!r} is not one of jsonapi, plain")
    return api


def _revision_header(r: Reader, headers: dict) -> str | None:
    """`revision_header`: a header of `headers` whose value is an API version date (YYYY-MM-DD[...])."""
    name = r.get("revision_header", str, None)
    if name is not None and (name not in headers or not _REVISION.match(str(headers[name]))):
        raise r.fail("revision_header", f"{name!r} must name one of api.headers whose value starts with a YYYY-MM-DD date")
    return name


def _revision_where(r: Reader, headers: dict) -> str:
    name = r.mapping.get("revision_header")
    at = getattr(headers, "at", None)
    return at(name) if at is not None and name in headers else r.at("headers") if r.has("headers") else r.where


def _params_since(r: Reader, api: ApiSpec, sent: set[str]) -> None:
    """`params_since`: {parameter: first revision that accepts it}; refuse a spec whose revision is older."""
    if not r.has("params_since"):
        return
    since = r.child("params_since")
    if api.revision_header is None:
        raise r.fail("params_since", "needs api.revision_header (which header carries the revision)")
    current = str(api.headers[api.revision_header])[:10]
    for param in since.mapping:
        needed = str(since.get(param, (str, _date)))
        if not _REVISION.match(needed):
            raise since.fail(param, f"{needed!r} is not a YYYY-MM-DD revision")
        if param in sent and current < needed[:10]:
            raise since.fail(
                param,
                f"{param} needs revision {needed} or later, but api.headers.{api.revision_header} is {current} "
                f"({api.revision_where}); raise the revision or stop sending {param}",
            )


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
    from .paginators import build_paginator  # paginators.py reads PaginationSpec from here

    kind = r.get("type", str, required=True)
    options = type(r.mapping)({k: v for k, v in r.mapping.items() if k != "type"})
    if hasattr(r.mapping, "key_where"):
        options.where, options.key_where = r.mapping.where, dict(r.mapping.key_where)
    for key in options:
        r.get(key, (str, int))
    pagination = PaginationSpec(type=kind, options=options, where=r.where, context=r.context)
    # Built once here so a bad paginator stops the load, not the run after earlier streams synced.
    build_paginator(pagination)
    return pagination


def _filter(r: Reader) -> FilterSyntax:
    syntax = FilterSyntax(
        param=r.get("param", str, required=True),
        predicate=_template(r, "predicate", ..., {"op", "field", "value"}),
        combine=_template(r, "combine", "{predicates}", {"predicates"}),
        separator=r.get("separator", str, ","),
        operators=_string_map(r, "operators", ...),
        datetime_format=r.get("datetime_format", str, "%Y-%m-%dT%H:%M:%SZ"),
        string_quote=r.get("string_quote", str, "'"),
    )
    r.done()
    return syntax


def _rate_limit_headers(r: Reader) -> tuple[str, str, str] | None:
    """`rate_limit_headers`: {limit, remaining, reset} header names, or null to read none."""
    if r.has("rate_limit_headers") and r.get("rate_limit_headers", object, None) is None:
        return None
    names = r.child("rate_limit_headers", {})
    limit, remaining, reset = RATE_LIMIT_HEADERS
    found = (names.get("limit", str, limit), names.get("remaining", str, remaining), names.get("reset", str, reset))
    names.done()
    for key, name in zip(("limit", "remaining", "reset"), found):
        if not _HEADER_NAME.fullmatch(name):
            raise names.fail(key, f"{name!r} is not an HTTP header name")
    return found


def _retry(r: Reader) -> RetrySpec:
    retry = RetrySpec(
        statuses=_retry_statuses(r),
        max_attempts=_int(r, "max_attempts", 5, 1, 100),
        retry_after_header=r.get("retry_after_header", str, "Retry-After"),
        max_wait_seconds=_number(r, "max_wait_seconds", 60, 0, 3600),
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
    if "extends" not in body:
        return body
    parent_name = body["extends"]
    if not isinstance(parent_name, str):
        raise SpecError(f"streams.{name}.extends: expected a stream name, got {show(parent_name)}", where=body.at("extends"))
    if parent_name not in raw:
        raise SpecError(f"streams.{name}.extends: unknown stream {parent_name!r}; {did_you_mean(parent_name, raw)}", where=body.at("extends"))
    if parent_name in chain or parent_name == name:
        raise SpecError(f"streams.{name}.extends: cycle through {parent_name!r}", where=body.at("extends"))
    base = _resolve_extends(parent_name, raw, streams, chain + [name])
    merged = type(body)()
    merged.where, merged.key_where = body.where, {**base.key_where, **body.key_where}
    merged.update(base)
    for key, value in body.items():
        if key == "extends":
            continue
        if key == "params" and isinstance(value, dict) and isinstance(base.get("params", {}), dict):
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
    params = _scalar_map(r, "params")
    page_size = _int(r, "page_size", None, 1, MAX_PAGE_SIZE)
    if page_size is not None and api.page_size_param is None:
        raise r.fail("page_size", "needs api.page_size_param")
    pk = r.get("primary_key", list, required=True)
    if not pk or not all(isinstance(k, str) and k for k in pk) or len(set(pk)) != len(pk):
        raise r.fail("primary_key", "must be a non-empty list of distinct column names")
    parent = None
    if r.has("parent"):
        p = r.child("parent")
        parent = ParentSpec(
            stream=p.get("stream", str, required=True),
            fields=_string_map(p, "fields", ...),
            bounded=p.get("bounded", bool, True),
            skip_statuses=_statuses(p, "skip_statuses"),
            where=p.at("stream"),
        )
        p.done()
    partitions = tuple(_partition(r, i, item, api, cursor) for i, item in enumerate(r.get("partitions", list, [])))
    names = [d.name for d in partitions]
    if len(set(names)) != len(names):
        raise r.fail("partitions", "two partitions share a name (each keeps its own cursor by name)")
    include = _include(r)
    stream = StreamSpec(
        name=name,
        path=r.get("path", str, required=True),
        params=params,
        page_size=page_size,
        primary_key=tuple(pk),
        cursor=cursor,
        sync_modes=modes,
        partitions=partitions,
        parent=parent,
        record_filter=_jmespath(r, "record_filter", None),
        on_filter_miss=_on_filter_miss(r),
        newest_by=_newest_by(r),
        include=include,
        derived=_derived(r),
        optional=_optional(r, params),
        pagination=_pagination(r.child("pagination")) if r.has("pagination") else api.pagination,
        rate_limit=r.get("rate_limit", str, None),
        scopes=_strings(r, "scopes"),
        where=r.where,
    )
    _params_since(r, api, set(stream.params) | ({api.page_size_param} if page_size is not None and api.page_size_param else set()))
    r.done()
    if stream.rate_limit is not None and stream.rate_limit not in api.rate_limit_tiers:
        known = ", ".join(sorted(api.rate_limit_tiers)) or "none"
        raise r.fail("rate_limit", f"unknown tier {stream.rate_limit!r}; known: {known}")
    _check_path(r, stream.path, parent)
    _check_primary_key(r, api, stream)
    return stream


def _check_path(r: Reader, path: str, parent: ParentSpec | None) -> None:
    """A path starts with / and its only placeholders are {parent.<field>} of an existing parent."""
    if not path.startswith("/"):
        raise r.fail("path", f"{path!r} must start with / (the base URL comes from api.base_url)")
    for name in _PATH_PLACEHOLDER.findall(path):
        field = name.removeprefix("parent.")
        if not name.startswith("parent.") or not field.strip():
            raise r.fail("path", f"unknown placeholder {{{name}}}; only {{parent.<field>}} is filled")
        if parent is None:
            raise r.fail("path", f"uses {{{name}}} but the stream has no parent")
    if "{" in _PATH_PLACEHOLDER.sub("", path) or "}" in _PATH_PLACEHOLDER.sub("", path):
        raise r.fail("path", f"{path!r} has an unmatched brace")


def _check_primary_key(r: Reader, api: ApiSpec, stream: "StreamSpec") -> None:
    """JSON:API records are identified by `id`; other key columns must be ones the spec itself adds.

    A key naming an attribute that a record may lack stores null keys, which match nothing and
    duplicate rows on every incremental run.
    """
    if api.record_format != "jsonapi":
        return
    added = {"id"}
    added.update(stream.parent.fields.values() if stream.parent else ())
    added.update(d.column for d in stream.partitions if d.column)
    for column in stream.primary_key:
        if column not in added:
            known = ", ".join(sorted(added))
            raise r.fail("primary_key", f"{column!r} is not a column every record has; use {known} (see specs/README.md)")


def _derived(r: Reader) -> dict[str, str] | None:
    """`derived`: column -> jmespath, each compiled now so a typo stops the load at its line."""
    if not r.has("derived"):
        return None
    d = r.child("derived")
    columns = {str(column): _jmespath(d, column) for column in d.mapping}
    return columns or None


def _optional(r: Reader, params: dict[str, str]) -> dict[str, str]:
    """`optional`: {item: {param: P}}, an item of the comma list in params[P] that a config may leave out (`leave_out`)."""
    optional = r.get("optional", dict, {})
    items = {}
    for item, body in optional.items():
        if not isinstance(body, dict) or set(body) != {"param"} or not isinstance(body["param"], str):
            raise _inner_fail(r, "optional", optional, item, f"expected {{param: <query parameter>}}, got {show(body)}")
        param = body["param"]
        if str(item) not in params.get(param, "").split(","):
            listed = params.get(param)
            raise _inner_fail(r, "optional", optional, item, f"{item!r} is not in the comma list of params[{param!r}]"
                              + (f" ({listed!r})" if listed is not None else " (the stream sends no such parameter)"))
        items[str(item)] = param
    return items


def _newest_by(r: Reader) -> str | None:
    """A dotted path of the normalised record (its column is the table's), or None."""
    field = r.get("newest_by", str, None)
    if field is not None and not _DOTTED.fullmatch(field):
        raise r.fail("newest_by", f"{field!r} is not a record field (names joined by dots, as its column is named)")
    return field


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
    field = _jmespath(r, "field")
    lower = r.get("lower", str, "gte")
    if lower not in BOUND_OPERATORS:
        raise r.fail("lower", f"{lower!r} is not one of {', '.join(BOUND_OPERATORS)}")
    if api.filter is not None and lower not in api.filter.operators:
        raise r.fail("lower", f"api.filter.operators has no {lower!r}")
    upper = _cursor_upper(r)
    if upper == "none" and r.has("slice"):
        raise r.fail("slice", _SLICE_UNBOUNDED)
    cursor = CursorSpec(
        field=field,
        filter_field=r.get("filter_field", str, field),
        lower=lower,
        upper=upper,
        granularity=parse_duration(r.get("granularity", str, "1s"), r, "granularity"),
        lookback=parse_duration(r.get("lookback", str, "0s"), r, "lookback"),
        sort=r.get("sort", bool, api.sort_param is not None),
        where=r.where,
        start=_cursor_start(r),
        slice=check_step(parse_duration(r.get("slice", str), r, "slice"), r, api.filter and api.filter.operators) if r.has("slice") else None,
    )
    r.done()
    return cursor


def _cursor_upper(r: Reader) -> str:
    upper = r.get("upper", str, "lt")
    if upper not in UPPER_BOUNDS:
        raise r.fail("upper", f"{upper!r} is not one of {', '.join(UPPER_BOUNDS)}")
    return upper


def _cursor_start(r: Reader) -> str:
    start = r.get("start", str, "start_date")
    if start not in CURSOR_STARTS:
        raise r.fail("start", f"{start!r} is not one of {', '.join(CURSOR_STARTS)}")
    return start


def _cursor_override(r: Reader, base: CursorSpec, api: ApiSpec) -> CursorSpec:
    """A partition value's cursor: the stream's cursor with the keys given here replaced."""
    changed: dict[str, Any] = {}
    if r.has("field"):
        changed["field"] = changed["filter_field"] = _jmespath(r, "field")
    if r.has("filter_field"):
        changed["filter_field"] = r.get("filter_field", str)
    if r.has("lower"):
        changed["lower"] = r.get("lower", str)
        if changed["lower"] not in BOUND_OPERATORS or (api.filter is not None and changed["lower"] not in api.filter.operators):
            raise r.fail("lower", f"{changed['lower']!r} is not one of {', '.join(BOUND_OPERATORS)} in api.filter.operators")
    if r.has("upper"):
        changed["upper"] = _cursor_upper(r)
        if changed["upper"] == "none" and base.slice is not None:
            raise r.fail("upper", "none, but the stream's cursor.slice needs a less-than filter to end each window")
    for key in ("granularity", "lookback"):
        if r.has(key):
            changed[key] = parse_duration(r.get(key, str), r, key)
    if r.has("sort"):
        changed["sort"] = r.get("sort", bool)
    if r.has("start"):
        changed["start"] = _cursor_start(r)
    r.done()
    return dataclasses.replace(base, where=r.where, **changed)


def _value_text(value: Any) -> str:
    """A partition value as state keys and `cursors` name it (booleans as true/false)."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _partition(r: Reader, index: int, item: Any, api: ApiSpec, cursor: CursorSpec | None = None) -> PartitionDimension:
    p = Reader(item, f"{r.name('partitions')}[{index}]", SpecError, r.at("partitions"))
    values = p.get("values", list, required=True)
    if not values:
        raise p.fail("values", "must list at least one value")
    for value in values:
        if not isinstance(value, (str, int, float, bool)):
            raise p.fail("values", f"{show(value)} is not a string, number or true/false")
    if len({(type(v), v) for v in values}) != len(values):
        raise p.fail("values", "lists a value twice")
    f = p.child("filter", None)
    cursors = None
    if p.has("cursors"):
        c = p.child("cursors")
        if cursor is None:
            raise p.fail("cursors", "needs the stream's cursor")
        texts = {_value_text(v) for v in values}
        cursors = {}
        for value in c.mapping:
            if _value_text(value) not in texts:
                raise c.fail(value, f"{show(value)} is not one of this partition's values")
            cursors[_value_text(value)] = _cursor_override(c.child(value), cursor, api)
            c.get(value, dict)
    dimension = PartitionDimension(
        name=p.get("name", str, required=True),
        values=tuple(values),
        filter_field=f.get("field", str, None),
        op=f.get("op", str, "eq"),
        column=p.get("column", str, None),
        cursors=cursors,
    )
    f.done()
    p.done()
    if dimension.filter_field and (api.filter is None or dimension.op not in api.filter.operators):
        raise p.fail("filter", f"operator {dimension.op!r} is not in api.filter.operators")
    return dimension


# Validation helpers: each reads one key and refuses what the engine could not use.


def _int(r: Reader, key: str, default: Any, low: int, high: int) -> Any:
    value = r.get(key, int, default)
    if r.has(key) and not low <= value <= high:
        raise r.fail(key, f"{value} is not between {low} and {high}")
    return value


def _number(r: Reader, key: str, default: float, low: float, high: float) -> float:
    value = r.get(key, (int, float), default)
    if not low <= value <= high:  # also refuses nan
        raise r.fail(key, f"{value} is not between {low} and {high}")
    return float(value)


def _retry_statuses(r: Reader) -> tuple[int, ...]:
    statuses = r.get("statuses", list, [429, 500, 502, 503, 504])
    for status in statuses:
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise r.fail("statuses", f"{show(status)} is not an HTTP status (an integer from 100 to 599)")
    return tuple(statuses)


def _strings(r: Reader, key: str) -> tuple[str, ...]:
    values = r.get(key, list, [])
    for value in values:
        if not isinstance(value, str) or not value:
            raise r.fail(key, f"{show(value)} is not a non-empty string")
    return tuple(values)


def _inner_fail(r: Reader, key: str, mapping: Any, inner: str, message: str) -> SpecError:
    """An error about `inner` inside the mapping at `key`, pointing at its own line."""
    at = getattr(mapping, "at", None)
    return SpecError(f"{r.name(key)}.{inner}: {message}", where=at(inner) if at else r.at(key))


def _string_map(r: Reader, key: str, default: Any = None) -> dict[str, str]:
    mapping = r.get(key, dict, default if default is ... else {})
    for k, v in mapping.items():
        if not isinstance(v, str) or not v:
            raise _inner_fail(r, key, mapping, k, f"{show(v)} is not a non-empty string")
    return {str(k): v for k, v in mapping.items()}


def _scalar_map(r: Reader, key: str) -> dict[str, str]:
    """Query parameters: values are strings or numbers (a list or mapping would be sent as its repr)."""
    mapping = r.get(key, dict, {})
    for k, v in mapping.items():
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise _inner_fail(r, key, mapping, k, f"{show(v)} is not a string or number")
    return {str(k): str(v) for k, v in mapping.items()}


def _include(r: Reader) -> dict[str, dict[str, str]]:
    include = r.get("include", dict, {})
    for relationship, columns in include.items():
        if not isinstance(columns, dict) or not columns:
            raise _inner_fail(r, "include", include, relationship, f"expected a mapping of attribute: column, got {show(columns)}")
        for attribute, column in columns.items():
            if not isinstance(column, str) or not column:
                where = columns.at(attribute) if hasattr(columns, "at") else r.at("include")
                raise SpecError(f"{r.name('include')}.{relationship}.{attribute}: {show(column)} is not a column name", where=where)
    return {str(rel): {str(a): c for a, c in cols.items()} for rel, cols in include.items()}


def _template(r: Reader, key: str, default: Any, names: set[str]) -> str:
    """A str.format template using exactly the placeholders `names` (each at least once)."""
    text = r.get(key, str, default)
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as err:
        raise r.fail(key, f"{text!r} has an unmatched brace") from err
    wanted = ", ".join("{" + n + "}" for n in sorted(names))
    for field in sorted(used - names):
        raise r.fail(key, f"unknown placeholder {{{field}}}; use {wanted}")
    for field in sorted(names - used):
        raise r.fail(key, f"must contain {{{field}}}")
    return text


def _header_text(r: Reader, key: str, value: Any, name: Any = None, mapping: Any = None) -> str:
    """A header name or value: a scalar without line breaks or control characters (no header injection)."""
    def fail(message: str) -> SpecError:
        return _inner_fail(r, key, mapping, str(name), message) if name is not None else r.fail(key, message)

    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise fail(f"{show(value)} is not a string")
    text = str(value)
    if not text.isprintable() or (name is not None and not str(name).isprintable()):
        raise fail("contains a line break or control character")
    return text


def _base_url(r: Reader) -> str:
    url = r.get("base_url", str, required=True).rstrip("/")
    problem = url_problem(url)
    if problem:
        raise r.fail("base_url", problem)
    return url
