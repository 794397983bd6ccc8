"""One requests.Session per run: headers, the key only to the base origin, rate budget, retries, redaction."""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import math
import os
import random
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

import jmespath
import orjson
import requests
import requests.adapters
import requests.utils
import urllib3

from .bodies import body_parser, has_long_integer
from .config import Secret
from .errors import ApiError, ConfigError, clean
from .events import NO_EVENTS, RunEvents
from .spec import ApiSpec, RateTier

log = logging.getLogger("klx.http")
CONNECT_SECONDS = 10.0
CHUNK_BYTES = 64 * 1024
DETAIL_CHARS = 300  # an API's error detail is shown on one line of at most this many characters
WATCH_SECONDS = 0.1  # how often request deadlines are checked
TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
# Seconds added to each rate window: the API counts a request when it arrives, and of two requests the later
# one sent may arrive first (by up to this much), so a request sent at the end of one of our windows may
# be counted in the API's next one.
WINDOW_MARGIN = 0.25
POOL_CONNECTIONS = 32  # kept-alive connections per host: at least the requests klx has in flight at once


class RateBudget:
    """The budget of one endpoint (or named bucket): at most `burst` requests a second and `steady` a minute.

    The API counts fixed windows, and the whole steady quota comes back when one ends. Once its rate-limit
    headers have placed the steady window (see `follow`), it is kept the same way here: it opens with our
    first request after the last one closed and closes `60 + margin` seconds later, or where the headers say
    the API's does. A sliding minute would replay the first minute's gaps (klx starting up, a stream waiting
    on its parent) in every later one. Nothing is sent in the last `2 x margin` seconds of a window: a
    request sent then may be counted in either of the API's windows. A budget no header describes (a named
    bucket such as predictive analytics) cannot know where the API's minutes fall, so its steady window
    slides: any `60 + margin` seconds hold at most `steady`, which no placement of the API's minutes can
    exceed. The burst window always slides (any `1 + margin` seconds hold at most `burst`).
    """

    def __init__(
        self, tier: RateTier, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep, margin: float = 0.0
    ) -> None:
        self.tier, self.margin = tier, margin
        self.windows = ((1.0 + margin, tier.burst), (60.0 + margin, tier.steady))
        self.sent: deque[float] = deque()  # send times within the burst window
        self.opened: float | None = None  # when the current steady window opened (None: none yet)
        self.closes = self.quiet = -math.inf  # when it closes, and from when nothing is sent until then
        self.counted = 0  # requests the API counts in it: ours, and others' the headers reported
        self.placed = False  # the API's headers placed the steady window (follow): fixed from then on, else sliding
        self.minute: deque[float] = deque()  # send times within the sliding steady window, until placed
        self.ticket = threading.local()  # (window opened, its count, sent at) of this thread's last request
        self.lock = threading.Lock()
        self.clock, self.sleep = clock, sleep
        self.heard = threading.Event()  # the API answered (or failed) a request counted here
        self.prober: int | None = None  # the thread sending that first request

    def scale(self, share: float) -> None:
        """Pace at `share` of the spec's tier (at least one request per window): the API said the account gets less."""
        burst, steady = (max(1, int(n * share + 1e-9)) for n in (self.tier.burst, self.tier.steady))
        with self.lock:
            self.windows = ((1.0 + self.margin, burst), (60.0 + self.margin, steady))

    def rate_now(self) -> float:
        """Requests a second this budget lets through now: its burst rate while its steady window has room, else its steady rate."""
        (_, burst), (span, steady) = self.windows
        with self.lock:
            now = self.clock()
            if self.placed:
                room = self.counted < steady or now >= self.closes
            else:
                room = sum(1 for t in self.minute if now - t < span) < steady
        return float(burst) if room else steady / span

    def follow(self, used: int, reset: float) -> None:
        """The API's answer to this thread's last request said its steady window counts `used` requests and ends in `reset` seconds.

        Others sharing the quota (other apps on the same account) spend it too: the count takes the
        API's, plus ours sent since that request (the API may not have counted them yet). The window
        ends by now + `reset`, and not before that request was sent + `reset` - 1 (Reset is rounded up
        to whole seconds); when that disagrees with ours (another app opened it, or the API's minutes
        fall otherwise), the API's end is taken and requests stop a margin before it may come.
        """
        with self.lock:
            opened, place, sent_at = getattr(self.ticket, "place", (None, 0, 0.0))
            if opened is None or opened != self.opened:
                return  # our window has moved on since that request: the answer describes an earlier one
            self.placed = True
            self.counted = max(self.counted, used + self.counted - place)
            latest, earliest = self.clock() + reset, sent_at + reset - 1.0
            if latest < self.closes or earliest > self.closes:
                self.closes, self.quiet = latest, earliest - self.margin

    def acquire(self) -> float:
        """Wait until one more request fits both windows, then count it; the seconds waited.

        Until the API has answered one request of this budget, the others wait for that answer: its rate-limit
        headers (api.rate_limit_headers) may say the account gets less than the spec's tier (see _follow), and
        a burst sent before knowing would come back as 429s.
        """
        waited = 0.0
        while not self.heard.is_set():
            with self.lock:
                if self.prober in (None, threading.get_ident()):
                    self.prober = threading.get_ident()
                    break
            began = time.monotonic()
            self.heard.wait(1.0)
            waited += time.monotonic() - began
        while True:
            with self.lock:
                now = self.clock()
                wait = self._wait(now)
                if wait <= 0:
                    self._count(now)
                    return waited
            waited += wait
            self.sleep(wait)

    def _wait(self, now: float) -> float:
        """Seconds until a request may be sent (<= 0: now)."""
        (span, burst), (_, steady) = self.windows
        while self.sent and now - self.sent[0] >= span:
            self.sent.popleft()
        # The oldest of the last `burst` sends must leave the burst window first.
        wait = self.sent[-burst] + span - now if len(self.sent) >= burst else 0.0
        if not self.placed:
            minute = self.windows[1][0]
            while self.minute and now - self.minute[0] >= minute:
                self.minute.popleft()
            if len(self.minute) >= steady:  # the oldest of the last `steady` sends must leave the minute first
                wait = max(wait, self.minute[-steady] + minute - now)
        elif now < self.closes and (self.counted >= steady or now >= self.quiet):
            wait = max(wait, self.closes - now)
        return wait

    def _count(self, now: float) -> None:
        """Count a request sent now; the first one after the steady window closed opens the next."""
        if now >= self.closes:
            span = self.windows[1][0]
            self.opened, self.counted = now, 0
            self.closes, self.quiet = now + span, now + span - 2 * self.margin
        self.counted += 1
        self.sent.append(now)
        if not self.placed:
            self.minute.append(now)
        self.ticket.place = (self.opened, self.counted, now)


@dataclass(frozen=True, slots=True)
class Page:
    """A parsed response body and what it cost."""

    body: Any
    url: str
    received_at: float  # epoch seconds
    rate: tuple[float, float, float] | None = None  # the rate-limit headers (api.rate_limit_headers): limit, remaining, seconds to reset
    size: int = 0  # bytes of the response body


class HttpClient:
    """Sends GETs for all streams of one API; safe to call from several threads."""

    def __init__(
        self,
        api: ApiSpec,
        api_key: Secret,
        base_url: str | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.base_url = (base_url or api.base_url).rstrip("/")
        self.secret = api_key
        try:
            self.origin = origin_of(self.base_url)
        except ValueError:
            raise ApiError(f"base URL {_host(self.base_url)} is not an absolute http(s) URL") from None
        verify = ca_bundle() if self.origin[0] == "https" else True  # refused before anything is opened
        self.session = requests.Session()
        self.session.headers.update(api.headers)
        # What requests reads from the environment on every request (trust_env) is read here once: the CA bundle
        # (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) and the proxies for the base URL (HTTPS_PROXY, NO_PROXY...), the
        # only origin a request goes to (_check_origin). Profiled on a sync: the per-request reads (os.environ
        # scans, a ~/.netrc lookup) held the GIL for 2.6% of the run. Nor is ~/.netrc read: requests' basic auth
        # from it replaced the key header.
        self.session.trust_env = False
        self.session.verify = verify
        self.proxies: dict[str, str] = requests.utils.get_environ_proxies(self.base_url)
        for prefix in ("http://", "https://"):
            # One kept-alive connection per concurrent request sequence (engine/concurrency.py), so none is dropped.
            self.session.mount(prefix, _Adapter(pool_maxsize=POOL_CONNECTIONS))
        # The key is added per request, and only for the base URL's origin: never on the session, where
        # a next link or redirect to another host (or to http://) would carry it along.
        self.auth = {api.auth_header: api.auth_value.format(api_key=api_key.reveal())}
        self.budgets: dict[str, RateBudget] = {}
        self.answered = threading.Event()  # the API has answered a request with a page or a 429: it is there and takes the key
        self.budgets_lock = threading.Lock()  # streams run in threads: a bucket must get one budget, not one per thread
        self.watchdog = _Watchdog()
        # Real waits happen on an event, so close() (Ctrl-C) ends them at once; tests inject their own sleep.
        self.sleep = self._pause if sleep is time.sleep else sleep
        self.clock = clock
        self.events: RunEvents = NO_EVENTS  # run.py sets its observer: requests, retries, rate-limit waits
        self.detail = jmespath.compile(api.error_detail) if api.error_detail else None
        self.parse = body_parser(api, parse_body)  # a page body as parse_body reads it, minus what records never use

    def url_for(self, path: str) -> str:
        """The absolute URL of a spec path (which starts with /); next links come absolute from the paginator's urljoin."""
        return self.base_url + path

    def get(
        self, url: str, params: dict[str, str], *, stream: str, endpoint: str, tier: str | None, scopes: tuple[str, ...] = ()
    ) -> Page:
        """GET and parse JSON, retrying what the spec calls transient within its time budget; ApiError on anything else."""
        retry = self.api.retry
        shown = self.redact(url, params)
        self._check_origin(url, stream)
        started = self.clock()
        attempt = 0
        while True:
            attempt += 1
            budgets = self._budgets(url, params, endpoint, tier)
            try:
                for budget in budgets:
                    self.events.throttled(stream, budget.acquire())
                self._check_open(stream)
                timeout = min(retry.request_timeout_seconds, retry.total_seconds - (self.clock() - started))
                page = self._attempt(url, params, stream, shown, scopes, max(timeout, 0.001))
                self.answered.set()
                if tier and page.rate:
                    _follow(page.rate, budgets)
                return page
            except _Transient as failure:
                wait = self._wait(attempt, failure.retry_after)
                spent = self.clock() - started
                budget = FIRST_CONTACT_SECONDS if failure.unreachable and not self.answered.is_set() else retry.total_seconds
                if attempt >= retry.max_attempts or spent + wait > budget or self.watchdog.closed.is_set():
                    error = failure.error
                    if attempt > 1:
                        error.message += f" (gave up after {attempt} attempts in {spent:.0f}s)"
                    raise error from failure.__cause__
                log.warning("%s on GET %s; retry %d/%d in %.1fs", failure.why, shown, attempt, retry.max_attempts - 1, wait)
                self.events.retry(stream, failure.why, wait)
            finally:
                for budget in budgets:
                    budget.heard.set()
            self.sleep(wait)

    def _attempt(self, url: str, params: dict[str, str], stream: str, shown: str, scopes: tuple[str, ...], timeout: float) -> Page:
        """One request: a Page, an ApiError, or _Transient for what may be retried."""
        name = self.api.name
        began = time.monotonic()
        flight = self.watchdog.start(timeout)
        try:
            try:
                response = self.session.get(
                    url,
                    params=params,
                    headers=self.auth,
                    timeout=(min(CONNECT_SECONDS, timeout), timeout),
                    allow_redirects=False,
                    stream=True,
                    proxies=self.proxies,
                )
                with response:
                    if 300 <= response.status_code < 400:
                        raise self._redirected(response, stream, shown)
                    body = self._read(response, stream, shown)
            except (requests.exceptions.InvalidHeader, UnicodeEncodeError):
                # Its message (or .object) holds the header value, i.e. the key: never chain it.
                raise ApiError(f"the {self.api.auth_header} header is not a valid HTTP header value (stream {stream})", stream=stream) from None
            except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema) as err:
                raise ApiError(f"{name}: cannot send GET {shown} (stream {stream}): {type(err).__name__}", stream=stream, url=shown) from None
            except requests.exceptions.SSLError as err:
                # A certificate problem does not go away by retrying; say so at once.
                raise ApiError(
                    f"{name}: TLS failed on GET {shown} (stream {stream}): {_ssl_reason(err)}",
                    stream=stream,
                    url=shown,
                    hint="behind a TLS-inspecting proxy, point REQUESTS_CA_BUNDLE at its CA certificate",
                ) from None
            except Exception as err:
                # Cutting a socket from the watchdog can surface as almost any exception in this thread.
                if isinstance(err, ApiError) or not (flight.reason or isinstance(err, TRANSPORT_ERRORS)):
                    raise
                if flight.reason == "closed":
                    why, message = "stopped", f"GET {shown} (stream {stream}) stopped: klx is shutting down"
                elif flight.reason == "deadline" or _read_timeout(err):
                    why, message = f"no answer within {timeout:.3g}s", f"{name} did not answer GET {shown} within {timeout:.3g}s (stream {stream})"
                elif isinstance(err, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError, http.client.IncompleteRead)):
                    why, message = "response cut short", f"{name} cut the response to GET {shown} short (stream {stream})"
                else:
                    why = transport_reason(err) or type(err).__name__
                    message = f"{name} unreachable on GET {shown} (stream {stream}): {why}"
                self.events.request(stream, shown, None, time.monotonic() - began)
                unreachable = why == REFUSED or why.startswith(NO_NAME)
                hint = "check source.base_url and the network; klx check CONFIG tries the connection" if unreachable else None
                raise _Transient(why, ApiError(message, stream=stream, url=shown, hint=hint), unreachable=unreachable) from err
        finally:
            self.watchdog.finish(flight)
        status = response.status_code
        log.info("GET %s (stream %s): %d, %d bytes in %.2fs", shown, stream, status, len(body), timeout - (flight.deadline - time.monotonic()))
        self.events.request(stream, shown, status, time.monotonic() - began)
        if status == 429:
            # A rate limit is counted per account, so the API is there and took the key: the other streams need
            # not wait while this one waits out Retry-After (up to a minute, several times over when another
            # app uses the account's budget for this endpoint), each on a budget of its own.
            self.answered.set()
        if status in self.api.retry.statuses:
            header = self.api.retry.retry_after_header
            raise _Transient(f"HTTP {status}", self._error(status, response.reason, body, stream, shown, scopes),
                             retry_after_seconds(response.headers.get(header) if header else None))
        if status >= 400:
            raise self._error(status, response.reason, body, stream, shown, scopes)
        try:
            parsed = self.parse(body)
        except RecursionError:
            raise ApiError(f"{name} sent JSON nested too deeply to read on GET {shown} (stream {stream})", stream=stream, url=shown) from None
        except ValueError as err:
            # A 200 whose body was cut off mid-transfer: the same request is safe to repeat.
            message = f"{name} sent an unreadable JSON body on GET {shown} (stream {stream})"
            raise _Transient("unreadable JSON body", ApiError(message, stream=stream, url=shown)) from err
        return Page(body=parsed, url=shown, received_at=time.time(), rate=_rate_headers(response.headers, self.api.rate_limit_headers), size=len(body))

    def _read(self, response: requests.Response, stream: str, shown: str) -> bytes:
        """The decoded body, refused past api.max_response_mb (a gzip body can inflate a thousandfold): by its
        declared length before it is read, or as it grows when its length is not known ahead."""
        limit = int(self.api.max_response_mb * 1024 * 1024)
        headers = response.headers
        length = headers.get("Content-Length", "")
        if length.isascii() and length.isdigit() and "Content-Encoding" not in headers and "Transfer-Encoding" not in headers:
            # The body's size is known before a byte of it is read: refused at once when too large, else read
            # whole into one buffer. Read in chunks (below), a 2 MB page was copied twice more (each chunk into
            # a growing bytearray, that into bytes) and its pages faulted in three times.
            if int(length) > limit:
                raise self._too_large(stream, shown)
            return response.raw.read(decode_content=True)
        body = bytearray()
        for chunk in response.iter_content(CHUNK_BYTES):
            body += chunk
            if len(body) > limit:
                raise self._too_large(stream, shown)
        return bytes(body)

    def _too_large(self, stream: str, shown: str) -> ApiError:
        return ApiError(
            f"{self.api.name} sent a response larger than {self.api.max_response_mb:g} MB on GET {shown} (stream {stream})",
            stream=stream,
            url=shown,
            hint="raise api.max_response_mb in the spec if such pages are expected",
        )

    def redact(self, url: str, params: dict[str, str]) -> str:
        """The URL for messages: no secret, query decoded for reading."""
        parts = urlsplit(url)
        query = urlencode(params, safe="[](),:'") if params else parts.query
        text = f"{parts.path}?{query}" if query else parts.path
        return text.replace(self.secret.reveal(), "***")

    def close(self) -> None:
        """Cut every request in flight (their threads end at once), end any wait, close the session."""
        self.watchdog.close()
        self.session.close()

    def _pause(self, seconds: float) -> None:
        if self.watchdog.closed.wait(seconds):
            raise ApiError("stopped while waiting to retry: klx is shutting down")

    def _check_open(self, stream: str) -> None:
        if self.watchdog.closed.is_set():
            raise ApiError(f"stream {stream} stopped: klx is shutting down", stream=stream)

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

    def _budgets(self, url: str, params: dict[str, str], endpoint: str, tier: str | None) -> list[RateBudget]:
        """The endpoint's own budget plus every named bucket the request's parameters select (spec `rate_limit_buckets`).

        A named bucket is shared by every path that selects it; next links carry their parameters in the URL.
        """
        wanted = [(f"path:{endpoint}", tier)] if tier else []
        if self.api.rate_limit_buckets:
            query = {**dict(parse_qsl(urlsplit(url).query)), **params}
            wanted += [(f"bucket:{b.name}", b.tier) for b in self.api.buckets_for(query)]
        with self.budgets_lock:
            for key, name in wanted:
                if key not in self.budgets:
                    self.budgets[key] = RateBudget(self.api.rate_limit_tiers[name], sleep=self.sleep, margin=WINDOW_MARGIN)
            return [self.budgets[key] for key, _ in wanted]

    def _wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before the next attempt: the server's Retry-After, else exponential backoff; within [0, max_wait_seconds]."""
        if retry_after is None:
            wait = min(2.0 ** (attempt - 1), 60.0) * (0.5 + random.random() / 2)
        else:
            wait = retry_after + random.random() * 0.25
        return min(max(wait, 0.0), self.api.retry.max_wait_seconds)

    def _error(self, status: int, reason: str, body: bytes, stream: str, shown: str, scopes: tuple[str, ...]) -> ApiError:
        try:
            detail = self.detail.search(json.loads(body)) if self.detail else None
        except (ValueError, RecursionError):
            detail = None  # an HTML or cut-off error page: its text is shown instead
        if not detail:
            detail = body[:DETAIL_CHARS * 4].decode("utf-8", "replace").strip() or reason or "no detail"
        hint = None
        if status == 401:
            hint = "check source.api_key: the API did not accept the key"
        elif status == 403:
            hint = f"the key lacks a scope this stream needs: {', '.join(scopes) or 'see the API docs'}"
        elif status == 404 and not self.answered.is_set():
            # Nothing has answered yet, so the whole base URL is more likely wrong than this one path: a
            # base URL ending in the path the spec adds again made every stream fail with a bare 404.
            hint = f"check source.base_url ({self.base_url}): it is the API's root, to which the spec adds paths like {shown.split('?')[0]}"
        return ApiError(
            f"{self.api.name} {status} on GET {shown} (stream {stream}): {clean(str(detail), DETAIL_CHARS)}",
            status=status,
            stream=stream,
            url=shown,
            hint=hint,
        )


class _Transient(Exception):
    """A failed attempt worth repeating; `error` is raised when no retry is left. `unreachable`: the host
    refused the connection or its name did not resolve (transport_reason)."""

    def __init__(self, why: str, error: ApiError, retry_after: float | None = None, unreachable: bool = False) -> None:
        super().__init__(why)
        self.why, self.error, self.retry_after, self.unreachable = why, error, retry_after, unreachable


def transport_reason(err: BaseException) -> str | None:
    """Why a request reached no server, read from the exception and its causes: "connection refused", "DNS
    lookup failed (...)", "TLS failed (...)" or "no answer"; None when none of these says."""
    cause: BaseException | None = err
    seen = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return REFUSED
        if isinstance(cause, socket.gaierror):
            return f"{NO_NAME} ({cause.strerror})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({cause.reason or cause})"
        if isinstance(cause, (TimeoutError, socket.timeout)):
            return "no answer"
        text = str(cause)
        for marker, why in (("Connection refused", REFUSED), ("Name or service not known", NO_NAME), ("nodename nor servname", NO_NAME),
                            ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"), ("SSL", "TLS failed"), ("timed out", "no answer")):
            if marker in text:
                return why
        cause = cause.__cause__ or cause.__context__
    return None


REFUSED, NO_NAME = "connection refused", "DNS lookup failed"
# Before the API has answered once, a host that refuses connections or whose name does not resolve is given
# this long (not the spec's whole retry budget, 80 s and more): a wrong base_url or a network that is down
# says so in seconds, while a blip of a few seconds is still ridden out.
FIRST_CONTACT_SECONDS = 15.0


def parse_body(body: bytes) -> Any:
    """A JSON response body as Python values; ValueError when it is not JSON (RecursionError when nested too deeply).

    orjson parses a page faster than json; what it refuses but json reads (NaN, a lone surrogate) or
    cannot nest is read again by json, which also says why. orjson turns an integer beyond 64 bits into
    a float, losing digits: a body with a run of 19 digits anywhere (rare, and cheap to look for) goes to json.
    """
    if not has_long_integer(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def _rate_headers(headers: Any, names: tuple[str, str, str] | None) -> tuple[float, float, float] | None:
    """(limit, remaining, reset) from the headers `names` (the spec's rate_limit_headers); None unless all three
    are non-negative numbers."""
    if names is None:
        return None
    try:
        values = tuple(float(headers[name]) for name in names)
    except (KeyError, ValueError):
        return None
    return values if all(0 <= v < math.inf for v in values) else None


def _follow(rate: tuple[float, float, float], budgets: list[RateBudget]) -> None:
    """Pace by what the API says: its limit may be below the spec's tier, and others may spend the same quota.

    The headers describe the endpoint's own steady window (budgets[0]); a smaller limit there means the
    account's quota is cut, so every bucket the request counts against is cut by the same share.
    """
    limit, remaining, reset = rate
    own = budgets[0]
    if limit < 1:
        return
    share = min(1.0, limit / own.tier.steady)
    for budget in budgets:
        budget.scale(share)
    own.follow(int(limit - remaining), reset)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP-date); None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return None if math.isnan(seconds) else seconds


_current = threading.local()  # the _Flight of the request this thread is sending


class _Flight:
    """One request in flight: its deadline, the connection it uses, and why it was cut (if it was)."""

    __slots__ = ("deadline", "conn", "reason")

    def __init__(self, deadline: float) -> None:
        self.deadline, self.conn, self.reason = deadline, None, None

    def cut(self, reason: str) -> None:
        """Shut the socket down: a thread blocked reading it wakes at once (closing it would not)."""
        self.reason = self.reason or reason
        sock = getattr(self.conn, "sock", None)
        if isinstance(sock, socket.socket):
            try:
                # socket.socket's own shutdown: SSLSocket.shutdown would also drop the TLS object under the reader.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


class _Watchdog:
    """Cuts a request still running at its deadline (connect + whole body), and every request on close()."""

    def __init__(self) -> None:
        self.flights: set[_Flight] = set()
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, seconds: float) -> _Flight:
        """Watch the request this thread is about to send."""
        flight = _Flight(time.monotonic() + seconds)
        with self.lock:
            self.flights.add(flight)
            if self.thread is None:
                self.thread = threading.Thread(target=self._watch, name="klx-deadlines", daemon=True)
                self.thread.start()
        _current.flight = flight
        return flight

    def finish(self, flight: _Flight) -> None:
        """Stop watching `flight`."""
        _current.flight = None
        with self.lock:
            self.flights.discard(flight)

    def close(self) -> None:
        """Cut every request in flight and refuse new ones."""
        self.closed.set()
        with self.lock:
            for flight in self.flights:
                flight.cut("closed")

    def _watch(self) -> None:
        # A socket timeout only bounds each read: a server trickling one byte at a time never hits it.
        while not self.closed.wait(WATCH_SECONDS):
            with self.lock:
                if not self.flights:
                    self.thread = None
                    return
                now = time.monotonic()
                for flight in self.flights:
                    if flight.deadline <= now:
                        flight.cut("deadline")


class _TracksConnection:
    """Pool mixin: notes the connection a request gets on the thread's _Flight."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        flight = getattr(_current, "flight", None)
        if flight is not None:
            flight.conn = conn
            if flight.reason:
                flight.cut(flight.reason)
        return conn


class _HTTPPool(_TracksConnection, urllib3.HTTPConnectionPool):
    pass


class _HTTPSPool(_TracksConnection, urllib3.HTTPSConnectionPool):
    pass


class _Adapter(requests.adapters.HTTPAdapter):
    """Uses pools that note which connection each request gets, so a deadline or close() can cut it."""

    POOLS = {"http": _HTTPPool, "https": _HTTPSPool}

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """requests' pool manager with the tracking pools."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self.POOLS)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        """The same through an HTTP(S) proxy (HTTPS_PROXY); SOCKS keeps its own pools and socket timeouts only."""
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(self.POOLS)
        return manager


def _read_timeout(err: Exception) -> bool:
    """Whether a socket read timed out: before the body requests raises ReadTimeout; within it ConnectionError(ReadTimeoutError),
    or ReadTimeoutError itself where the body is read from urllib3 whole (HttpClient._read)."""
    return (
        isinstance(err, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError))
        or bool(err.args) and isinstance(err.args[0], urllib3.exceptions.ReadTimeoutError)
    )


def _ssl_reason(err: requests.exceptions.SSLError) -> str:
    """The innermost ssl error's reason (e.g. CERTIFICATE_VERIFY_FAILED), not requests' nested repr."""
    cause: BaseException | None = err
    for _ in range(10):  # requests wraps urllib3's MaxRetryError, which wraps ssl's error
        if cause is None:
            break
        if isinstance(cause, ssl.SSLError):
            return getattr(cause, "reason", None) or type(cause).__name__  # only the ssl module sets .reason
        inner = getattr(cause, "reason", None)
        cause = cause.__cause__ or (inner if isinstance(inner, BaseException) else None) or (
            cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
        )
    return "SSLError"


def ca_bundle() -> str | bool:
    """The CA certificates to verify TLS with: REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE), else the bundled ones (True).

    A variable naming no file or folder is refused at once: requests raised a bare OSError on every request,
    which a run retried as a network failure for its whole time budget (81 s) and reported as "unreachable: OSError".
    """
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        path = os.environ.get(name)
        if path:
            if not os.path.exists(path):
                raise ConfigError(f"{name}={path}: no such file or folder",
                                  hint=f"point {name} at the CA certificate (PEM) of the TLS-inspecting proxy, or unset it")
            return path
    return True


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute http(s) URL; ValueError for anything else or a URL with a user."""
    parts = urlsplit(url)  # its scheme and hostname come lowercased
    scheme = parts.scheme
    if scheme not in ("http", "https") or not parts.hostname or parts.username is not None:
        raise ValueError(f"not an absolute http(s) URL without credentials: {url!r}")
    return scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80)


def _host(url: str) -> str:
    """scheme://host[:port] of `url` for messages (no path, query or credentials)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}" if parts.scheme else repr(url[:80])
    except ValueError:
        return repr(url[:80])
