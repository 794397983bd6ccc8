"""Klaviyo JSON:API error bodies (shapes copied from recorded responses, API-NOTES §1.8)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

THROTTLE_DOC = "https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling#rate-limits"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiError(Exception):
    """An error response: HTTP status plus one JSON:API error object."""

    status: int
    code: str
    title: str
    detail: str
    pointer: str | None = None
    parameter: str | None = None
    links: dict | None = None
    meta: dict | None = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()

    def body(self) -> dict:
        """The response body, e.g. {"errors": [{"id": ..., "status": 400, ...}]}."""
        err: dict = {"id": str(uuid.uuid4()), "status": self.status, "code": self.code,
                     "title": self.title, "detail": self.detail}
        if self.parameter is not None:
            err["source"] = {"parameter": self.parameter}
        elif self.pointer is not None:
            err["source"] = {"pointer": self.pointer}
        if self.links is not None:
            err["links"] = self.links
        if self.meta is not None:
            err["meta"] = self.meta
        return {"errors": [err]}


def invalid(detail: str, *, parameter: str | None = None, pointer: str | None = None) -> ApiError:
    """400 `invalid` (API-NOTES §1.8)."""
    return ApiError(status=400, code="invalid", title="Invalid input.", detail=detail,
                    parameter=parameter, pointer=pointer)


def invalid_filter(reason: str = "") -> ApiError:
    """400 for a filter Klaviyo refuses (API-NOTES §1.5: exact text varies)."""
    detail = "Invalid filter provided" + (f": {reason}" if reason else "")
    return invalid(detail, parameter="filter")


def invalid_cursor() -> ApiError:
    """400 for a page[cursor] that does not decode (klaviyo-api-python#9)."""
    return invalid("Invalid cursor provided.", pointer="/data/")


def unsupported_page_size(resource: str) -> ApiError:
    """400 like recorded read-unsupported-pagination.json."""
    return invalid(f"'page_size' is not a valid field for the resource '{resource}'.",
                   pointer="/data/attributes/page_size")


def not_authenticated() -> ApiError:
    """401 for a missing Authorization header (API-NOTES §1.8)."""
    return ApiError(status=401, code="not_authenticated",
                    title="Authentication credentials were not provided.",
                    detail="Missing or invalid private key.", pointer="/data/", meta=None)


def authentication_failed() -> ApiError:
    """401 for a wrong key, as recorded invalid-auth.json."""
    return ApiError(status=401, code="authentication_failed",
                    title="Incorrect authentication credentials.",
                    detail="Incorrect authentication credentials.", pointer="/data/", meta=None)


def not_found(detail: str = "Not found.") -> ApiError:
    """404 `not_found` (recorded delete-tag-not-found.json)."""
    return ApiError(status=404, code="not_found", title="Not found.", detail=detail,
                    pointer="/data/", meta=None)


def throttled(retry_after: int) -> ApiError:
    """429 `throttled` with Retry-After (API-NOTES §1.7)."""
    unit = "second" if retry_after == 1 else "seconds"
    return ApiError(status=429, code="throttled", title="Request was throttled.",
                    detail=f"Request was throttled. Expected available in {retry_after} {unit}.",
                    pointer="/data", links={"type": THROTTLE_DOC},
                    headers=(("Retry-After", str(retry_after)),))


def server_error(status: int) -> ApiError:
    """5xx bodies used by fault injection."""
    titles = {500: ("error", "A server error occurred."),
              502: ("bad_gateway", "Bad gateway."),
              503: ("service_unavailable", "Service temporarily unavailable, try again later.")}
    code, title = titles.get(status, ("error", "A server error occurred."))
    return ApiError(status=status, code=code, title=title, detail=title, meta=None)
