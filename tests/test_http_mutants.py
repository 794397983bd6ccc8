"""engine/http.py behaviours that a mutation run (CONTRIBUTING.md, "Mutation testing") found no test asserting."""

from __future__ import annotations

import dataclasses
import json
import ssl
import threading
import time
import urllib.error
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
import urllib3

from engine.config import Secret
from engine.errors import ApiError
from engine.events import NoEvents
from engine.http import HttpClient, _host, _read_timeout, _ssl_reason, parse_body, retry_after_seconds
from tests.hostile_api import HostileApi, send, wait_for
from tests.test_http_errors import API, KEY, Clock, always, client, get, klaviyo_error


def test_a_redirect_without_a_location_is_an_api_error_carrying_its_status() -> None:
    with always(301) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url))
    assert str(raised.value) == "Klaviyo 301 on GET /api/metrics?page[size]=10 (stream metrics): redirected to ''; klx does not follow redirects"
    # run.py reads these: a parent's skip_statuses, the failed stream, the URL in a warning.
    assert (raised.value.status, raised.value.stream, raised.value.url) == (301, "metrics", "/api/metrics?page[size]=10")
    assert len(api.hits) == 1


def test_a_socks_proxy_keeps_its_own_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.http import _Adapter

    class SocksManager:  # what urllib3.contrib.socks gives when PySocks is installed
        def __init__(self, *args, **kwargs) -> None:
            self.pool_classes_by_scheme = {"http": "socks-http", "https": "socks-https"}

    monkeypatch.setattr(requests.adapters, "SOCKSProxyManager", SocksManager)
    manager = _Adapter().proxy_manager_for("socks5://127.0.0.1:1080")
    assert manager.pool_classes_by_scheme == {"http": "socks-http", "https": "socks-https"}


def verify_failed() -> ssl.SSLError:
    err = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    err.reason = "CERTIFICATE_VERIFY_FAILED"  # set by the ssl module on the errors it raises
    return err


def urllib3_1_chain() -> requests.exceptions.SSLError:
    """urllib3 1.x raises MaxRetryError without `from`: the ssl error is only its .reason."""
    inner = urllib3.exceptions.SSLError(verify_failed())
    return requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, "https://x.test/", reason=inner))


def urllib3_2_chain() -> requests.exceptions.SSLError:
    inner = urllib3.exceptions.SSLError(verify_failed())
    try:
        raise urllib3.exceptions.MaxRetryError(None, "https://x.test/", reason=inner) from inner
    except urllib3.exceptions.MaxRetryError as err:
        return requests.exceptions.SSLError(err)


def caused_by(cause: BaseException) -> requests.exceptions.SSLError:
    try:
        raise requests.exceptions.SSLError("wrapped") from cause
    except requests.exceptions.SSLError as err:
        return err


def looping() -> requests.exceptions.SSLError:
    err = requests.exceptions.SSLError()
    err.args = (err,)
    return err


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (urllib3_2_chain, "CERTIFICATE_VERIFY_FAILED"),
        (urllib3_1_chain, "CERTIFICATE_VERIFY_FAILED"),
        (lambda: caused_by(verify_failed()), "CERTIFICATE_VERIFY_FAILED"),
        # urllib3's pyOpenSSL backend raises ssl.SSLError itself, without the ssl module's .reason.
        (lambda: requests.exceptions.SSLError(ssl.SSLEOFError(8, "EOF occurred in violation of protocol")), "SSLEOFError"),
        (lambda: requests.exceptions.SSLError(), "SSLError"),
        (lambda: requests.exceptions.SSLError("bad handshake"), "SSLError"),
        (lambda: requests.exceptions.SSLError(urllib.error.URLError("certificate verify failed")), "SSLError"),
        (looping, "SSLError"),
    ],
    ids=["urllib3-2", "urllib3-1", "cause", "no-reason", "no-args", "text", "text-reason", "loop"],
)
def test_a_tls_failure_is_named_by_the_innermost_ssl_reason(make, reason: str) -> None:
    assert _ssl_reason(make()) == reason


def test_a_retry_after_date_without_a_zone_is_read_as_utc() -> None:
    now = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("Sun, 01 Nov 2026 12:00:30 -0000", now=now) == 30.0


def test_a_retry_after_date_is_counted_from_the_current_time() -> None:
    header = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after_seconds(header) <= 30


def test_close_before_a_request_has_its_connection_marks_it_cut() -> None:
    http = client("http://127.0.0.1:9")
    flight = http.watchdog.start(5)  # the request has no connection yet
    http.close()
    assert flight.reason == "closed"
    http.watchdog.finish(flight)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://evil.example/api/metrics?page=2", "https://evil.example"),
        ("http://127.0.0.1:8443/api", "http://127.0.0.1:8443"),
        ("https://pk_user:secret@evil.example/api", "https://evil.example"),  # credentials are never shown
        ("HTTPS://EVIL.example/", "https://evil.example"),
        ("//evil.example/api/metrics", "'//evil.example/api/metrics'"),  # no scheme: the text, quoted
        ("", "''"),
        ("https:///api", "https://"),  # no host
        ("/" + "x" * 200, repr("/" + "x" * 79)),  # bounded
        ("https://[::1/api" + "x" * 100, repr(("https://[::1/api" + "x" * 100)[:80])),  # unparsable
        ("https://evil.example:99999/api" + "x" * 100, repr(("https://evil.example:99999/api" + "x" * 100)[:80])),  # bad port
    ],
)
def test_a_url_in_a_message_shows_only_its_scheme_host_and_port(url: str, shown: str) -> None:
    assert _host(url) == shown


def get_tiered(http, tier: str = "M"):
    return http.get(http.url_for("/api/metrics"), {}, stream="metrics", endpoint="/api/metrics", tier=tier)


class Recorder(NoEvents):
    """The events HttpClient reports, in order (durations left out)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def request(self, stream: str, url: str, status: int | None, seconds: float) -> None:
        assert 0 <= seconds < 10
        self.calls.append(("request", stream, url, status))

    def retry(self, stream: str, why: str, wait: float) -> None:
        self.calls.append(("retry", stream, why, wait))

    def throttled(self, stream: str, seconds: float) -> None:
        self.calls.append(("throttled", stream, seconds))


def test_every_attempt_retry_and_budget_wait_is_reported_to_the_run() -> None:
    clock = Clock()

    def respond(handler, hit) -> None:
        send(handler, *((503, klaviyo_error(503, "down")) if len(api.hits) == 1 else (200, {"data": []})))

    with HostileApi(respond) as api:
        http = client(api.url, clock)
        http.events = events = Recorder()
        get_tiered(http)
    url = "/api/metrics"
    assert events.calls == [
        ("throttled", "metrics", 0.0),
        ("request", "metrics", url, 503),
        ("retry", "metrics", "HTTP 503", clock.slept[0]),
        ("throttled", "metrics", 0.0),
        ("request", "metrics", url, 200),
    ]


def test_an_attempt_without_an_answer_is_reported_with_no_status() -> None:
    from tests.test_http_errors import closed_port

    http = client(f"http://127.0.0.1:{closed_port()}", max_attempts=1)
    http.events = events = Recorder()
    with pytest.raises(ApiError):
        get(http)
    assert events.calls == [("request", "metrics", "/api/metrics?page[size]=10", None)]


def test_no_request_is_sent_once_the_client_is_closed() -> None:
    with always(200, {"data": []}) as api:
        http = client(api.url)
        http.close()
        with pytest.raises(ApiError) as raised:
            get(http)
    assert str(raised.value) == "stream metrics stopped: klx is shutting down"
    assert (raised.value.stream, raised.value.status) == ("metrics", None)  # run.py marks that stream stopped
    assert api.hits == []


def test_close_ends_a_retry_wait_at_once() -> None:
    with always(503, klaviyo_error(503, "down"), {"Retry-After": "30"}) as api:
        http = client(api.url, real_time=True)
        outcome: list[BaseException] = []
        worker = threading.Thread(target=lambda: outcome.append(pytest.raises(ApiError, get, http).value))
        worker.start()
        wait_for(lambda: api.hits)
        time.sleep(0.1)  # the worker is in its 30 s wait now
        began = time.monotonic()
        http.close()
        worker.join(5)
        assert not worker.is_alive() and time.monotonic() - began < 1
    assert str(outcome[0]) == "stopped while waiting to retry: klx is shutting down"
    assert len(api.hits) == 1


@pytest.mark.parametrize(("jitter", "waits"), [(0.0, [0.5, 1, 2, 4, 8, 16, 30, 30]), (1.0, [1, 2, 4, 8, 16, 32, 60, 60])])
def test_without_retry_after_waits_double_from_one_second_up_to_a_minute_with_jitter(
    monkeypatch: pytest.MonkeyPatch, jitter: float, waits: list[float]
) -> None:
    monkeypatch.setattr("engine.http.random.random", lambda: jitter)
    clock = Clock()
    with always(503, klaviyo_error(503, "down")) as api:
        with pytest.raises(ApiError):
            get(client(api.url, clock, max_attempts=9, max_wait_seconds=1000, total_seconds=10_000))
    assert clock.slept == waits


@pytest.mark.parametrize(("jitter", "wait"), [(0.0, 7.0), (1.0, 7.25)])
def test_a_retry_after_gets_up_to_a_quarter_second_of_jitter(monkeypatch: pytest.MonkeyPatch, jitter: float, wait: float) -> None:
    monkeypatch.setattr("engine.http.random.random", lambda: jitter)
    clock = Clock()
    with always(429, klaviyo_error(429, "Throttled."), {"Retry-After": "7"}) as api:
        with pytest.raises(ApiError):
            get(client(api.url, clock, max_attempts=2))
    assert clock.slept == [wait]


def test_without_a_retry_after_header_in_the_spec_the_backoff_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("engine.http.random.random", lambda: 1.0)
    clock = Clock()
    with always(429, klaviyo_error(429, "Throttled."), {"Retry-After": "30"}) as api:
        with pytest.raises(ApiError):
            get(client(api.url, clock, max_attempts=2, retry_after_header=None))
    assert clock.slept == [1.0]


def test_a_url_requests_cannot_send_is_an_api_error_at_once() -> None:
    clock = Clock()
    with pytest.raises(ApiError) as raised:
        get(client("http://.example.test", clock))
    assert str(raised.value) == "Klaviyo: cannot send GET /api/metrics?page[size]=10 (stream metrics): InvalidURL"
    assert (raised.value.stream, raised.value.url) == ("metrics", "/api/metrics?page[size]=10")
    assert clock.slept == []


def test_a_failure_that_is_not_the_network_is_not_retried() -> None:
    clock = Clock()
    http = client("http://127.0.0.1:9", clock)
    calls: list[str] = []

    def broken(url, **kwargs):
        calls.append(url)
        raise KeyError("a bug, not a network failure")

    http.session.get = broken
    with pytest.raises(KeyError):
        get(http)
    assert len(calls) == 1 and clock.slept == []


@pytest.mark.parametrize("status", [300, 308, 399])
def test_every_3xx_is_a_redirect_not_followed(status: int) -> None:
    with always(status, b"", {"Location": "https://elsewhere.test/x"}) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url))
    assert str(raised.value).endswith(f"{status} on GET /api/metrics?page[size]=10 (stream metrics): redirected to https://elsewhere.test; klx does not follow redirects")


def test_a_body_of_exactly_the_size_cap_is_read_and_one_byte_more_is_refused() -> None:
    body = b'{"data": "' + b"x" * (1024 * 1024 - 12) + b'"}'
    assert len(body) == 1024 * 1024
    with always(200, body) as api:
        assert get(client(api.url, max_response_mb=1)).size == 1024 * 1024
    with always(200, body + b" ") as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, max_response_mb=1))
    assert str(raised.value).startswith("Klaviyo sent a response larger than 1 MB on GET /api/metrics?page[size]=10 (stream metrics)")
    assert (raised.value.stream, raised.value.url) == ("metrics", "/api/metrics?page[size]=10")


def test_a_body_over_the_cap_is_refused_without_waiting_for_the_rest() -> None:
    def respond(handler, hit) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(4 * 1024 * 1024))
        handler.end_headers()
        handler.wfile.write(b" " * (1024 * 1024 + 64 * 1024))  # the body is read in 64 KiB chunks
        handler.wfile.flush()
        api.hang()  # the rest never comes

    with HostileApi(respond) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, max_response_mb=1, real_time=True, request_timeout_seconds=5, max_attempts=1))
    assert str(raised.value).startswith("Klaviyo sent a response larger than 1 MB on GET")


def test_a_declared_length_over_the_cap_is_refused_before_any_of_the_body() -> None:
    def respond(handler, hit) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(1024 * 1024 + 1))
        handler.end_headers()
        handler.wfile.flush()
        api.hang()  # no byte of the body ever comes: only its declared length can refuse it

    with HostileApi(respond) as api:
        began = time.monotonic()
        with pytest.raises(ApiError) as raised:
            get(client(api.url, max_response_mb=1, real_time=True, request_timeout_seconds=5, max_attempts=1))
    assert str(raised.value).startswith("Klaviyo sent a response larger than 1 MB on GET")
    assert time.monotonic() - began < 4  # refused at once, not at the request deadline


def chunked(parts: list[bytes]):
    """A handler answering 200 with `parts` as the chunks of a body without Content-Length."""

    def respond(handler, hit) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for part in parts:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()

    return respond


def test_a_chunked_body_is_read_whole_and_refused_past_the_cap() -> None:
    body = b'{"data": "' + b"x" * (1024 * 1024 - 12) + b'"}'
    parts = [body[i : i + 100_000] for i in range(0, len(body), 100_000)]
    with HostileApi(chunked(parts)) as api:
        page = get(client(api.url, max_response_mb=1))
    assert page.size == 1024 * 1024 and page.body == {"data": "x" * (1024 * 1024 - 12)}
    with HostileApi(chunked([*parts, b" "])) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, max_response_mb=1))
    assert str(raised.value).startswith("Klaviyo sent a response larger than 1 MB on GET")


def test_a_server_falling_silent_mid_body_did_not_answer_in_time() -> None:
    def respond(handler, hit) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b'{"data": [')
        handler.wfile.flush()
        api.hang()

    with HostileApi(respond) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, real_time=True, request_timeout_seconds=0.3, max_attempts=1))
    assert str(raised.value) == "Klaviyo did not answer GET /api/metrics?page[size]=10 within 0.3s (stream metrics)"



def test_a_body_read_whose_socket_times_out_before_the_deadline_did_not_answer_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # The socket's read timeout and the watchdog's deadline are the same length: either may fire first. Here
    # the deadline is far off, so the read timeout (urllib3's own ReadTimeoutError, unwrapped) is what ends it.
    from engine.http import _Watchdog

    start = _Watchdog.start
    monkeypatch.setattr(_Watchdog, "start", lambda self, seconds: start(self, seconds + 60))

    def respond(handler, hit) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b'{"data": [')
        handler.wfile.flush()
        api.hang()

    with HostileApi(respond) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, real_time=True, request_timeout_seconds=0.3, max_attempts=1))
    assert str(raised.value) == "Klaviyo did not answer GET /api/metrics?page[size]=10 within 0.3s (stream metrics)"

@pytest.mark.parametrize(
    ("err", "timed_out"),
    [
        (requests.exceptions.ReadTimeout("Read timed out."), True),  # before the body
        (requests.exceptions.ConnectionError(urllib3.exceptions.ReadTimeoutError(None, "/x", "Read timed out.")), True),  # within it
        (urllib3.exceptions.ReadTimeoutError(None, "/x", "Read timed out."), True),  # within a body read whole from urllib3
        (requests.exceptions.ConnectionError(urllib3.exceptions.NewConnectionError(None, "refused")), False),
        (requests.exceptions.ConnectionError(), False),
    ],
)
def test_a_read_timeout_is_told_from_an_unreachable_server(err: Exception, timed_out: bool) -> None:
    assert _read_timeout(err) is timed_out


@pytest.mark.parametrize(
    ("status", "body", "scopes", "message"),
    [
        (403, klaviyo_error(403, "Forbidden."), (), "Forbidden.\n  hint: the key lacks a scope this stream needs: see the API docs"),
        (400, klaviyo_error(400, ""), ("x",), '{"errors": [{"id": "e1", "status": 400, "code": "x", "title": "t", "detail": "", "source": {}}]}'),
        (599, b"", ("x",), "no detail"),
    ],
)
def test_an_error_says_what_it_can(status: int, body, scopes: tuple[str, ...], message: str) -> None:
    with always(status, body) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url), scopes=scopes)
    assert str(raised.value) == f"Klaviyo {status} on GET /api/metrics?page[size]=10 (stream metrics): {message}"
    assert (raised.value.status, raised.value.stream, raised.value.url) == (status, "metrics", "/api/metrics?page[size]=10")


def test_without_an_error_detail_path_in_the_spec_the_error_body_is_shown() -> None:
    api_spec = dataclasses.replace(API, error_detail=None)
    with always(400, {"errors": "bad filter"}) as api:
        with pytest.raises(ApiError) as raised:
            get(HttpClient(api_spec, Secret(KEY), api.url))
    assert str(raised.value) == 'Klaviyo 400 on GET /api/metrics?page[size]=10 (stream metrics): {"errors": "bad filter"}'


@pytest.mark.parametrize(
    "body",
    [
        b"18446744073709551617",  # 2**64 + 1, the whole body
        b'{"id": -9223372036854775809}',
        b"[1, 2, 123456789012345678901234567891]",
        b'{"n": 9223372036854775807}',
    ],
)
def test_integers_beyond_64_bits_keep_every_digit(body: bytes) -> None:
    assert json.dumps(parse_body(body)).encode() == body


def test_a_key_no_header_can_hold_fails_the_stream_it_was_sent_for() -> None:
    http = HttpClient(API, Secret("pk_line\nbreak_0123456789"), "http://127.0.0.1:9")
    with pytest.raises(ApiError) as raised:
        get(http)
    assert raised.value.stream == "metrics"


def test_a_tls_failure_names_the_stream_and_url_it_failed_on() -> None:
    with always(200, {"data": []}) as api:  # plain HTTP: the TLS handshake fails
        with pytest.raises(ApiError) as raised:
            get(client(api.url.replace("http://", "https://")))
    assert (raised.value.stream, raised.value.url) == ("metrics", "/api/metrics?page[size]=10")


def test_a_retry_after_a_transport_failure_is_logged_with_what_failed(caplog: pytest.LogCaptureFixture) -> None:
    from tests.test_http_errors import cut_short

    clock = Clock()

    def respond(handler, hit) -> None:
        if len(api.hits) == 1:
            cut_short(handler, hit)
        else:
            send(handler, 200, {"data": []})

    with HostileApi(respond) as api:
        http = client(api.url, clock)
        http.events = events = Recorder()
        get(http)
    logged = [r.getMessage() for r in caplog.records if r.name == "klx.http" and r.levelname == "WARNING"]
    assert logged == [f"response cut short on GET /api/metrics?page[size]=10; retry 1/7 in {clock.slept[0]:.1f}s"]
    assert ("retry", "metrics", "response cut short", clock.slept[0]) in events.calls


def unreachable(handler, hit) -> None:
    handler.close_connection = True  # no status line at all: requests sees the connection dropped


@pytest.mark.parametrize(
    ("respond", "why", "message"),
    [
        (lambda handler, hit: send(handler, 200, b'{"data": [1, 2'), "unreadable JSON body", "Klaviyo sent an unreadable JSON body on GET {url} (stream metrics)"),
        ("cut_short", "response cut short", "Klaviyo cut the response to GET {url} short (stream metrics)"),
        (unreachable, "ConnectionError", "Klaviyo unreachable on GET {url} (stream metrics): ConnectionError"),
    ],
    ids=["unreadable-json", "cut-short", "dropped"],
)
def test_a_transient_failure_is_retried_for_its_reason_and_its_error_names_the_stream_and_url(
    respond, why: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    if respond == "cut_short":
        from tests.test_http_errors import cut_short as respond
    clock = Clock()
    url = "/api/metrics?page[size]=10"
    with HostileApi(respond) as api:
        http = client(api.url, clock, max_attempts=2)
        http.events = events = Recorder()
        with pytest.raises(ApiError) as raised:
            get(http)
    assert str(raised.value) == message.format(url=url) + f" (gave up after 2 attempts in {clock.now:.0f}s)"
    assert (raised.value.status, raised.value.stream, raised.value.url) == (None, "metrics", url)
    assert [c for c in events.calls if c[0] == "retry"] == [("retry", "metrics", why, clock.slept[0])]
    logged = [r.getMessage() for r in caplog.records if r.name == "klx.http" and r.levelname == "WARNING"]
    assert logged == [f"{why} on GET {url}; retry 1/1 in {clock.slept[0]:.1f}s"]


def test_json_nested_too_deeply_names_the_stream_and_url_and_is_not_retried() -> None:
    with always(200, b"[" * 5000 + b"]" * 5000) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, max_attempts=3))
    assert (raised.value.status, raised.value.stream, raised.value.url) == (None, "metrics", "/api/metrics?page[size]=10")
    assert len(api.hits) == 1


def test_each_answer_is_logged_with_its_status_size_and_the_time_it_took(caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps({"data": []}).encode()
    caplog.set_level("INFO", logger="klx.http")
    with always(200, body) as api:
        get(client(api.url, request_timeout_seconds=30))
    (message,) = [r.getMessage() for r in caplog.records if r.name == "klx.http"]
    prefix = f"GET /api/metrics?page[size]=10 (stream metrics): 200, {len(body)} bytes in "
    assert message.startswith(prefix) and message.endswith("s")
    # The time from sending to the whole body: never negative, never past the request's deadline.
    assert 0 <= float(message[len(prefix):-1]) <= 30


@pytest.mark.parametrize(("status", "reason"), [(404, "Not Found"), (429, "Too Many Requests"), (503, "Service Unavailable")])
def test_an_error_without_a_body_shows_the_status_reason_phrase(status: int, reason: str) -> None:
    with always(status, b"") as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, max_attempts=1))
    # The first line: a 404 before anything answered also hints at source.base_url (test_cli.py).
    assert str(raised.value).splitlines()[0] == f"Klaviyo {status} on GET /api/metrics?page[size]=10 (stream metrics): {reason}"


def test_a_request_waiting_for_the_first_answer_checks_every_second_and_reports_the_whole_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import engine.http
    from engine.http import RateBudget
    from engine.spec import RateTier

    now = [100.0]

    class Heard(threading.Event):
        """The first request's answer comes during the third one-second check."""

        def __init__(self) -> None:
            super().__init__()
            self.polls: list[float | None] = []

        def wait(self, timeout: float | None = None) -> bool:
            self.polls.append(timeout)
            now[0] += timeout
            if len(self.polls) == 3:
                self.set()
            return self.is_set()

    budget = RateBudget(RateTier(burst=10, steady=150))
    budget.prober = -1  # another thread sent the first request
    budget.heard = heard = Heard()
    monkeypatch.setattr(engine.http, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    assert budget.acquire() == 3.0
    assert heard.polls == [1.0, 1.0, 1.0]


def test_an_http_proxy_gets_the_tracking_pools_and_keeps_the_options_it_was_asked_for() -> None:
    from engine.http import _Adapter

    manager = _Adapter().proxy_manager_for("http://proxy.invalid:3128", cert_reqs="CERT_NONE")
    assert manager.connection_pool_kw["cert_reqs"] == "CERT_NONE"
    assert manager.pool_classes_by_scheme == _Adapter.POOLS


def test_a_spec_retrying_403_still_names_the_missing_scopes_when_it_gives_up() -> None:
    # Some APIs answer 403 to a burst (a rate limit), so a spec may list it among the retried statuses.
    with always(403, klaviyo_error(403, "Forbidden.")) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, statuses=(403,), max_attempts=1), scopes=("metrics:read", "lists:read"))
    assert str(raised.value) == (
        "Klaviyo 403 on GET /api/metrics?page[size]=10 (stream metrics): Forbidden.\n"
        "  hint: the key lacks a scope this stream needs: metrics:read, lists:read"
    )


def test_close_ends_a_wait_for_the_rate_budget_at_once() -> None:
    from engine.spec import RateTier

    spec = dataclasses.replace(API, rate_limit_tiers={**API.rate_limit_tiers, "one": RateTier(burst=1, steady=1)})
    errors: list[str] = []
    with always(200, {"data": []}) as api:
        http = HttpClient(spec, Secret(KEY), api.url)  # real waits: the budget waits as the client does
        get_tiered(http, "one")  # the minute's one request: the next waits for the window to close

        def second() -> None:
            try:
                get_tiered(http, "one")
            except ApiError as err:
                errors.append(str(err))

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        http.close()
        thread.join(5)
    assert errors == ["stopped while waiting to retry: klx is shutting down"]
    assert len(api.hits) == 1


def test_a_page_carries_the_shown_url_its_records_came_from() -> None:
    with always(200, {"data": []}) as api:
        assert get(client(api.url)).url == "/api/metrics?page[size]=10"  # run.py names it in warnings


def test_a_link_off_the_base_origin_says_what_a_link_must_stay_on() -> None:
    http = client("http://127.0.0.1:9")
    with pytest.raises(ApiError) as raised:
        http.get("https://evil.example/api/metrics", {}, stream="metrics", endpoint="/api/metrics", tier=None)
    assert str(raised.value) == (
        "Klaviyo sent a link to https://evil.example (stream metrics); klx sends the API key only to http://127.0.0.1:9 and stops\n"
        "  hint: a next link or redirect must stay on the configured base URL's scheme, host and port"
    )


def test_http_and_https_requests_go_through_the_adapter_a_deadline_can_cut() -> None:
    from engine.http import _Adapter

    http = client("https://api.example")
    assert isinstance(http.session.get_adapter("https://api.example/api/x"), _Adapter)
    assert isinstance(http.session.get_adapter("http://api.example/api/x"), _Adapter)


def test_the_deadline_watcher_never_keeps_klx_from_exiting() -> None:
    with always(200, {"data": []}) as api:
        http = client(api.url)
        flight = http.watchdog.start(5)
        try:
            assert http.watchdog.thread.daemon is True
        finally:
            http.watchdog.finish(flight)
            http.close()


def test_a_budget_that_sent_nothing_yet_lets_its_burst_through_and_ignores_answers_it_did_not_send() -> None:
    from engine.http import RateBudget
    from engine.spec import RateTier

    budget = RateBudget(RateTier(burst=10, steady=150))
    assert budget.rate_now() == 10.0
    budget.follow(149, 30.0)  # this thread sent no request through it: the answer is not about its window
    assert (budget.counted, budget.rate_now()) == (0, 10.0)
