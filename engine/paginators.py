"""The pagination registry: each paginator turns a page into the next request, or None at the end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol
from urllib.parse import parse_qsl, urljoin, urlsplit

import jmespath

from .errors import ApiError, SpecError
from .spec import PaginationSpec


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
        raise SpecError(f"pagination.type: unknown {spec.type!r}; known: {known}", where=spec.where)
    return PAGINATORS[spec.type](spec)


def _option(spec: PaginationSpec, key: str, default: Any = ...) -> Any:
    if key in spec.options:
        return spec.options[key]
    if default is ...:
        raise SpecError(f"pagination.{key}: required for type {spec.type}", where=spec.where)
    return default


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
        return cls(str(_option(spec, "next")))

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
        return cls(
            str(_option(spec, "offset_param", "offset")), str(_option(spec, "limit_param", "limit")), int(_option(spec, "limit", 100))
        )

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
        return cls(str(_option(spec, "page_param", "page")), int(_option(spec, "start", 1)))

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
