"""The pagination registry: each paginator turns a page into the next request, or None at the end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol
from urllib.parse import parse_qsl, urljoin, urlsplit

import jmespath
import jmespath.exceptions

from .errors import ApiError, SpecError
from .spec import PaginationSpec
from .yaml_source import did_you_mean, show


@dataclass(frozen=True, slots=True)
class Request:
    """A GET: a path or absolute URL and its query."""

    url: str
    params: dict[str, str]


class Paginator(Protocol):
    """Decides the request after `page` (the parsed body) given the request that fetched it."""

    def next_request(self, request: Request, page: Any, records: int) -> Request | None:
        """The next request, or None when the stream is exhausted."""


PAGINATORS: dict[str, Callable[[PaginationSpec], Paginator]] = {}


def paginator(name: str) -> Callable[[type], type]:
    """Register a paginator class under `name`."""

    def register(cls: type) -> type:
        PAGINATORS[name] = cls.from_spec
        return cls

    return register


def build_paginator(spec: PaginationSpec) -> Paginator:
    """A fresh paginator (they hold per-stream state) for `spec`."""
    if spec.type not in PAGINATORS:
        known = ", ".join(sorted(PAGINATORS))
        raise SpecError(f"{spec.context}.type: unknown {spec.type!r}; known: {known}", where=spec.where)
    return PAGINATORS[spec.type](spec)


def _option(spec: PaginationSpec, key: str, default: Any = ..., *, low: int | None = None) -> Any:
    """Option `key`, of the default's type (str, or int >= low); a SpecError naming its line otherwise."""
    known = _OPTIONS[spec.type]
    for name in spec.options:
        if name not in known:
            raise _fail(spec, name, f"unknown option for type {spec.type}; {did_you_mean(name, known)}")
    if key not in spec.options:
        if default is ...:
            raise SpecError(f"{spec.context}.{key}: required for type {spec.type}", where=spec.where)
        return default
    value = spec.options[key]
    if low is None and (not isinstance(value, str) or not value):
        raise _fail(spec, key, f"expected a non-empty string, got {show(value)}")
    if low is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
        raise _fail(spec, key, f"expected an integer of at least {low}, got {show(value)}")
    return value


def _fail(spec: PaginationSpec, key: str, message: str) -> SpecError:
    at = getattr(spec.options, "at", None)
    return SpecError(f"{spec.context}.{key}: {message}", where=at(key) if at else spec.where)


# Each paginator's options, so a misspelt one is refused instead of ignored.
_OPTIONS = {"next_link": ("next",), "offset": ("offset_param", "limit_param", "limit"), "page_number": ("page_param", "start")}


@paginator("next_link")
class NextLinkPaginator:
    """Follows a URL found in the body (JSON:API links.next); it carries every parameter itself."""

    def __init__(self, path: str) -> None:
        self.expression = path
        self.path = jmespath.compile(path)
        self.seen: set[str] = set()

    @classmethod
    def from_spec(cls, spec: PaginationSpec) -> "NextLinkPaginator":
        """Options: next (jmespath to the next URL)."""
        expression = _option(spec, "next")
        try:
            jmespath.compile(expression)
        except jmespath.exceptions.JMESPathError as err:
            raise _fail(spec, "next", f"invalid jmespath {expression!r}: {err}") from err
        return cls(expression)

    def next_request(self, request: Request, page: Any, records: int) -> Request | None:
        """The URL at `next` (absolute, or relative to the request's URL), split into its path and query."""
        link = self.path.search(page)
        if link is None or link == "":
            return None
        if not isinstance(link, str):
            kind = {dict: "an object", list: "an array", bool: "a boolean"}.get(type(link), "a number")
            raise ApiError(f"the API's next link ({self.expression}) is {kind}, not a URL")
        # The origin is checked where the request is sent (http.py), after resolving.
        link = urljoin(request.url, link.strip())
        if link in self.seen:
            # A server that hands back a link twice would otherwise loop forever (meltano's advance()).
            raise ApiError(f"the API returned the same next link twice: {_strip_query(link)}")
        self.seen.add(link)
        parts = urlsplit(link)
        return Request(url=f"{parts.scheme}://{parts.netloc}{parts.path}", params=dict(parse_qsl(parts.query, keep_blank_values=True)))


@paginator("offset")
class OffsetPaginator:
    """offset/limit parameters; stops on a short page."""

    def __init__(self, offset_param: str, limit_param: str, limit: int) -> None:
        self.offset_param, self.limit_param, self.limit = offset_param, limit_param, limit

    @classmethod
    def from_spec(cls, spec: PaginationSpec) -> "OffsetPaginator":
        """Options: offset_param, limit_param, limit."""
        return cls(_option(spec, "offset_param", "offset"), _option(spec, "limit_param", "limit"), _option(spec, "limit", 100, low=1))

    def first(self, request: Request) -> Request:
        """The first request with offset 0."""
        return Request(request.url, {**request.params, self.offset_param: "0", self.limit_param: str(self.limit)})

    def next_request(self, request: Request, page: Any, records: int) -> Request | None:
        """Advance the offset by the records this page held."""
        if records < self.limit:
            return None
        offset = int(request.params.get(self.offset_param, "0")) + records
        return Request(request.url, {**request.params, self.offset_param: str(offset), self.limit_param: str(self.limit)})


@paginator("page_number")
class PageNumberPaginator:
    """page=1,2,…; stops on an empty page."""

    def __init__(self, page_param: str, start: int) -> None:
        self.page_param, self.start = page_param, start

    @classmethod
    def from_spec(cls, spec: PaginationSpec) -> "PageNumberPaginator":
        """Options: page_param, start (first page number)."""
        return cls(_option(spec, "page_param", "page"), _option(spec, "start", 1, low=0))

    def first(self, request: Request) -> Request:
        """The first request with the first page number."""
        return Request(request.url, {**request.params, self.page_param: str(self.start)})

    def next_request(self, request: Request, page: Any, records: int) -> Request | None:
        """The following page number, until a page comes back empty."""
        if records == 0:
            return None
        number = int(request.params.get(self.page_param, str(self.start))) + 1
        return Request(request.url, {**request.params, self.page_param: str(number)})


def first_request(paginator: Paginator, request: Request) -> Request:
    """Let paginators that put their own parameters on the first page do so."""
    first = getattr(paginator, "first", None)
    return first(request) if first else request


def _strip_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
