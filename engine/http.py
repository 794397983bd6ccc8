"""One requests.Session per run: headers, the key only to the base origin, rate budget, retries, redaction."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import jmespath
import requests

from .config import Secret
from .errors import ApiError
from .spec import ApiSpec, RateTier

log = logging.getLogger("klx.http")


class RateBudget:
    """Sliding-window budget of one endpoint: at most `burst` requests a second and `steady` a minute."""

    def __init__(self, tier: RateTier, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.windows = ((1.0, tier.burst), (60.0, tier.steady))
        self.sent: deque[float] = deque()
        self.lock = threading.Lock()
        self.clock, self.sleep = clock, sleep

    def acquire(self) -> None:
        """Wait until one more request fits both windows, then count it."""
        while True:
            with self.lock:
                now = self.clock()
                while self.sent and now - self.sent[0] >= 60.0:
                    self.sent.popleft()
                wait = 0.0
                for span, limit in self.windows:
                    inside = [t for t in self.sent if now - t < span]
                    if len(inside) >= limit:
                        # The oldest of the last `limit` sends must leave the window first.
                        wait = max(wait, inside[-limit] + span - now)
                if wait <= 0:
                    self.sent.append(now)
                    return
            self.sleep(wait)


@dataclass(frozen=True, slots=True)
class Page:
    """A parsed response body and what it cost."""

    body: Any
    url: str
    received_at: float  # epoch seconds


class HttpClient:
    """Sends GETs for all streams of one API; thread-safe apart from the Session (one per thread later)."""

    def __init__(self, api: ApiSpec, api_key: Secret, base_url: str | None = None, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.api = api
        self.base_url = (base_url or api.base_url).rstrip("/")
        self.secret = api_key
        try:
            self.origin = origin_of(self.base_url)
        except ValueError:
            raise ApiError(f"base URL {_host(self.base_url)} is not an absolute http(s) URL") from None
        self.session = requests.Session()
        self.session.headers.update(api.headers)
        # The key is added per request, and only for the base URL's origin: never on the session, where
        # a next link or redirect to another host (or to http://) would carry it along.
        self.auth = {api.auth_header: api.auth_value.format(api_key=api_key.reveal())}
        self.budgets: dict[str, RateBudget] = {}
        self.sleep = sleep
        self.detail = jmespath.compile(api.error_detail) if api.error_detail else None

    def url_for(self, path_or_url: str) -> str:
        """An absolute URL; next links from the API are absolute already."""
        return path_or_url if "://" in path_or_url else self.base_url + path_or_url

    def get(
        self, url: str, params: dict[str, str], *, stream: str, endpoint: str, tier: str | None, scopes: tuple[str, ...] = ()
    ) -> Page:
        """GET and parse JSON, retrying what the spec calls transient; ApiError on anything else."""
        retry = self.api.retry
        shown = self.redact(url, params)
        self._check_origin(url, stream)
        for attempt in range(1, retry.max_attempts + 1):
            if tier:
                self._budget(endpoint, tier).acquire()
            last = attempt == retry.max_attempts
            try:
                response = self.session.get(url, params=params, headers=self.auth, timeout=(10, 120), allow_redirects=False)
            except requests.exceptions.InvalidHeader:
                # Its message quotes the header value, i.e. the key: never chain it.
                raise ApiError(f"the {self.api.auth_header} header is not a valid HTTP header value (stream {stream})", stream=stream) from None
            except (requests.ConnectionError, requests.Timeout) as err:
                if last:
                    raise ApiError(f"{self.api.name} unreachable on GET {shown} (stream {stream}): {type(err).__name__}", stream=stream, url=shown) from err
                self._backoff(attempt, None, f"{type(err).__name__}", shown)
                continue
            if response.status_code in retry.statuses and not last:
                self._backoff(attempt, response, f"HTTP {response.status_code}", shown)
                continue
            if 300 <= response.status_code < 400:
                raise self._redirected(response, stream, shown)
            if response.status_code >= 400:
                raise self._error(response, stream, shown, scopes)
            try:
                body = response.json()
            except ValueError as err:
                # A 200 whose body was cut off mid-transfer: the same request is safe to repeat.
                if last:
                    raise ApiError(f"{self.api.name} sent an unreadable JSON body on GET {shown} (stream {stream})", stream=stream, url=shown) from err
                self._backoff(attempt, None, "unreadable JSON body", shown)
                continue
            return Page(body=body, url=shown, received_at=time.time())
        raise AssertionError("unreachable: the last attempt returns or raises")

    def redact(self, url: str, params: dict[str, str]) -> str:
        """The URL for messages: no secret, query decoded for reading."""
        parts = urlsplit(url)
        query = urlencode(params, safe="[](),:'") if params else parts.query
        text = f"{parts.path}?{query}" if query else parts.path
        return text.replace(self.secret.reveal(), "***")

    def close(self) -> None:
        """Close the session."""
        self.session.close()

    def _check_origin(self, url: str, stream: str) -> None:
        try:
            origin = origin_of(url)
        except ValueError:
            origin = None
        if origin != self.origin:
            raise ApiError(
                f"{self.api.name} sent a link to {_host(url)} (stream {stream}); klx sends the API key only to {_host(self.base_url)} and stops",
                stream=stream,
                hint="a next link or redirect must stay on the configured base URL's scheme, host and port",
            )

    def _redirected(self, response: requests.Response, stream: str, shown: str) -> ApiError:
        # Redirects are not followed: requests would forward a custom auth header to any host.
        location = response.headers.get("Location", "")
        return ApiError(
            f"{self.api.name} {response.status_code} on GET {shown} (stream {stream}): redirected to {_host(location)}; klx does not follow redirects",
            status=response.status_code,
            stream=stream,
            url=shown,
        )

    def _budget(self, endpoint: str, tier: str) -> RateBudget:
        if endpoint not in self.budgets:
            self.budgets[endpoint] = RateBudget(self.api.rate_limit_tiers[tier])
        return self.budgets[endpoint]

    def _backoff(self, attempt: int, response: requests.Response | None, why: str, shown: str) -> None:
        retry = self.api.retry
        wait = min(2.0 ** (attempt - 1), 60.0) * (0.5 + random.random() / 2)
        if response is not None and retry.retry_after_header:
            header = response.headers.get(retry.retry_after_header)
            if header is not None:
                try:
                    wait = float(header) + random.random() * 0.25
                except ValueError:
                    pass
        wait = min(wait, retry.max_wait_seconds)
        log.warning("%s on GET %s; retry %d/%d in %.1fs", why, shown, attempt, retry.max_attempts - 1, wait)
        self.sleep(wait)

    def _error(self, response: requests.Response, stream: str, shown: str, scopes: tuple[str, ...]) -> ApiError:
        detail = None
        try:
            detail = self.detail.search(response.json()) if self.detail else None
        except ValueError:
            detail = None
        detail = str(detail) if detail else (response.text[:200].strip() or response.reason)
        detail = detail.replace(self.secret.reveal(), "***")
        hint = None
        if response.status_code == 401:
            hint = "check source.api_key: the API did not accept the key"
        elif response.status_code == 403:
            hint = f"the key lacks a scope this stream needs: {', '.join(scopes) or 'see the API docs'}"
        return ApiError(
            f"{self.api.name} {response.status_code} on GET {shown} (stream {stream}): {detail}",
            status=response.status_code,
            stream=stream,
            url=shown,
            hint=hint,
        )


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute http(s) URL; ValueError for anything else or a URL with a user."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.username is not None:
        raise ValueError(f"not an absolute http(s) URL without credentials: {url!r}")
    return scheme, parts.hostname.lower(), parts.port or (443 if scheme == "https" else 80)


def _host(url: str) -> str:
    """scheme://host[:port] of `url` for messages (no path, query or credentials)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}" if parts.scheme else repr(url[:80])
    except ValueError:
        return repr(url[:80])
