"""HttpClient's error paths against a scripted server on 127.0.0.1: each ends in one clean ApiError, never a hang or a traceback."""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from engine.config import Secret, default_spec_path
from engine.errors import ApiError
from engine.http import FIRST_CONTACT_SECONDS, HttpClient, retry_after_seconds
from engine.spec import Spec
from tests.hostile_api import HostileApi, gzip_bomb, send, trickle, wait_for

KEY = "pk_errors_0123456789abcdefghij"
API = Spec.from_yaml(default_spec_path()).api


class Clock:
    """A fake clock that the fake sleep moves forward; refuses to sleep forever."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if len(self.slept) > 50:
            raise RuntimeError("retried more than 50 times: retries never stop")
        self.slept.append(seconds)
        self.now += seconds


def client(url: str, clock: Clock | None = None, *, max_response_mb: float = 256, real_time: bool = False, **retry: float) -> HttpClient:
    """A client of `url`; waits are recorded on `clock` (fake), or really slept with `real_time`."""
    api = dataclasses.replace(API, retry=dataclasses.replace(API.retry, **retry), max_response_mb=max_response_mb)
    if real_time:
        return HttpClient(api, Secret(KEY), url)
    clock = clock or Clock()
    return HttpClient(api, Secret(KEY), url, sleep=clock.sleep, clock=clock)


def get(http: HttpClient, scopes: tuple[str, ...] = ("metrics:read",)):
    return http.get(http.url_for("/api/metrics"), {"page[size]": "10"}, stream="metrics", endpoint="/api/metrics", tier=None, scopes=scopes)


def always(status: int, body: object = b"", headers: dict[str, str] | None = None) -> HostileApi:
    return HostileApi(lambda handler, hit: send(handler, status, body, headers))


def klaviyo_error(status: int, detail: str) -> dict:
    return {"errors": [{"id": "e1", "status": status, "code": "x", "title": "t", "detail": detail, "source": {}}]}


def test_5xx_retries_stop_at_max_attempts_with_an_api_error() -> None:
    clock = Clock()
    with always(503, klaviyo_error(503, "Service unavailable, try later.")) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, clock, max_attempts=4))
    assert len(api.hits) == 4 and len(clock.slept) == 3
    assert str(raised.value) == (
        f"Klaviyo 503 on GET /api/metrics?page[size]=10 (stream metrics): Service unavailable, try later. (gave up after 4 attempts in {clock.now:.0f}s)"
    )
    assert raised.value.status == 503


def test_retries_stop_at_the_total_time_budget() -> None:
    clock = Clock()
    with always(429, klaviyo_error(429, "Throttled."), {"Retry-After": "4"}) as api:
        with pytest.raises(ApiError, match=r"Klaviyo 429 .* Throttled\. \(gave up after 3 attempts in 8s\)"):
            get(client(api.url, clock, max_attempts=100, total_seconds=10))
    # 0s, ~4s, ~8s: a fourth attempt would start after the 10 s budget.
    assert len(api.hits) == 3
    assert all(4.0 <= s <= 4.25 for s in clock.slept) and len(clock.slept) == 2


def test_a_silent_server_fails_within_the_budget_in_real_time() -> None:
    with HostileApi(lambda handler, hit: api.hang()) as api:
        began = time.monotonic()
        with pytest.raises(ApiError) as raised:
            get(client(api.url, real_time=True, request_timeout_seconds=0.5, total_seconds=2, max_attempts=100, max_wait_seconds=0.1))
        took = time.monotonic() - began
    # 0.5 s per attempt, waits of at most 0.1 s, the last attempt gets what is left of the 2 s: 4 or 5
    # attempts on a quiet machine, fewer when connecting alone eats into the budget on a loaded one; never
    # more than the budget holds, and never a single one (it does retry).
    assert re.fullmatch(r"Klaviyo did not answer GET /api/metrics\?page\[size\]=10 within [\d.]+s \(stream metrics\) "
                        r"\(gave up after [2-5] attempts in 2s\)", str(raised.value))
    assert 2 <= len(api.hits) <= 5
    assert 1.9 < took < 4


def test_a_trickling_server_is_cut_at_the_request_deadline() -> None:
    body = json.dumps({"data": [], "links": {"next": None}}).encode()
    with HostileApi(lambda handler, hit: trickle(handler, body, 0.05, api.stopping)) as api:
        began = time.monotonic()
        with pytest.raises(ApiError) as raised:
            get(client(api.url, real_time=True, request_timeout_seconds=1, max_attempts=1))
        took = time.monotonic() - began
    # Each byte comes well within any per-read timeout; only the overall deadline stops it (1.6 s of body).
    assert str(raised.value) == "Klaviyo did not answer GET /api/metrics?page[size]=10 within 1s (stream metrics)"
    assert took < 1.5


def test_close_cuts_a_hanging_request_at_once() -> None:
    with HostileApi(lambda handler, hit: api.hang()) as api:
        http = client(api.url, real_time=True, request_timeout_seconds=60)
        outcome: list[BaseException] = []
        worker = threading.Thread(target=lambda: outcome.append(pytest.raises(ApiError, get, http).value))
        worker.start()
        wait_for(lambda: api.hits)
        began = time.monotonic()
        http.close()
        worker.join(5)
        assert not worker.is_alive() and time.monotonic() - began < 1
    assert str(outcome[0]) == "GET /api/metrics?page[size]=10 (stream metrics) stopped: klx is shutting down"


def test_401_says_to_check_the_key() -> None:
    with always(401, klaviyo_error(401, "Incorrect authentication credentials.")) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url))
    assert str(raised.value) == (
        "Klaviyo 401 on GET /api/metrics?page[size]=10 (stream metrics): Incorrect authentication credentials.\n"
        "  hint: check source.api_key: the API did not accept the key"
    )
    assert len(api.hits) == 1


def test_a_429_on_the_first_request_lets_the_other_streams_start_while_it_is_waited_out() -> None:
    # The run's first stream (the scarcest budget, profiles) runs alone until the API answers (engine/concurrency.py).
    # A 429 from another app's use of that budget held every other stream, each on a budget of its own, for its
    # Retry-After (60 s, up to seven times over). A 429 is counted per account: the API is there and took the key.
    def respond(handler, hit) -> None:
        if len(api.hits) == 1:
            send(handler, 429, klaviyo_error(429, "Request was throttled."), {"Retry-After": "60"})
        else:
            send(handler, 200, {"data": [], "links": {"next": None}})

    clock = Clock()
    answered_while_waiting: list[bool] = []
    with HostileApi(respond) as api:
        http = client(api.url, clock)
        real_sleep = clock.sleep
        clock.sleep = lambda seconds: (answered_while_waiting.append(http.answered.is_set()), real_sleep(seconds))
        http.sleep = clock.sleep
        get(http)
    assert len(api.hits) == 2 and clock.slept[0] >= 60
    assert answered_while_waiting == [True]


def test_403_names_the_scopes_the_stream_needs() -> None:
    with always(403, klaviyo_error(403, "You do not have permission to perform this action.")) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url), scopes=("metrics:read", "events:read"))
    assert str(raised.value) == (
        "Klaviyo 403 on GET /api/metrics?page[size]=10 (stream metrics): You do not have permission to perform this action.\n"
        "  hint: the key lacks a scope this stream needs: metrics:read, events:read"
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_connection_error_on_the_last_attempt_is_an_api_error() -> None:
    clock = Clock()
    with pytest.raises(ApiError) as raised:
        get(client(f"http://127.0.0.1:{closed_port()}", clock, max_attempts=3))
    assert raised.value.message == (
        f"Klaviyo unreachable on GET /api/metrics?page[size]=10 (stream metrics): connection refused (gave up after 3 attempts in {clock.now:.0f}s)"
    )
    assert raised.value.hint == "check source.base_url and the network; klx check CONFIG tries the connection"
    assert len(clock.slept) == 2


@pytest.mark.parametrize("answered_before", [False, True])
def test_a_refused_connection_before_the_api_ever_answered_gives_up_in_seconds_not_the_whole_budget(answered_before: bool) -> None:
    # A wrong base_url or a network that is down: one line within FIRST_CONTACT_SECONDS, not after the spec's
    # whole retry budget (8 attempts, some 80 s). Once the API has answered in this run, the full budget again.
    clock = Clock()
    http = client(f"http://127.0.0.1:{closed_port()}", clock, max_attempts=8, total_seconds=300, max_wait_seconds=60)
    if answered_before:
        http.answered.set()
    with pytest.raises(ApiError) as raised:
        get(http)
    assert "connection refused (gave up after" in raised.value.message
    if answered_before:
        assert len(clock.slept) == 7 and clock.now > FIRST_CONTACT_SECONDS
    else:
        assert 1 <= len(clock.slept) < 7 and clock.now <= FIRST_CONTACT_SECONDS


def cut_short(handler, hit) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b'{"data": [')
    handler.wfile.flush()
    handler.close_connection = True


def test_a_body_cut_short_is_retried_then_an_api_error() -> None:
    clock = Clock()
    with HostileApi(cut_short) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, clock, max_attempts=2))
    assert str(raised.value) == (
        f"Klaviyo cut the response to GET /api/metrics?page[size]=10 short (stream metrics) (gave up after 2 attempts in {clock.now:.0f}s)"
    )
    assert len(api.hits) == 2


def test_a_body_cut_short_then_whole_is_read() -> None:
    def respond(handler, hit) -> None:
        if len(api.hits) == 1:
            cut_short(handler, hit)
        else:
            send(handler, 200, {"data": [{"id": "1"}]})

    with HostileApi(respond) as api:
        page = get(client(api.url))
    assert page.body == {"data": [{"id": "1"}]}


def test_an_unreadable_json_200_is_retried_then_an_api_error() -> None:
    clock = Clock()
    with always(200, b'{"data": [1, 2') as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, clock, max_attempts=2))
    assert str(raised.value) == (
        f"Klaviyo sent an unreadable JSON body on GET /api/metrics?page[size]=10 (stream metrics) (gave up after 2 attempts in {clock.now:.0f}s)"
    )


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (500, b"<html><body><h1>500 Internal Server Error</h1></body></html>", "<html><body><h1>500 Internal Server Error</h1></body></html>"),
        (400, b"not json at all", "not json at all"),
        (502, b"", "Bad Gateway"),
        (400, b"\xff\xfe\x00garbage", "\ufffd\ufffd garbage"),
        (400, b'{"errors": "a string, not a list"}', '{"errors": "a string, not a list"}'),
        (400, b"[" * 5000 + b"]" * 5000, "[" * 300),
    ],
)
def test_a_non_json_error_body_is_shown_as_text(status: int, body: bytes, detail: str) -> None:
    with always(status, body) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, max_attempts=1))
    message = str(raised.value)
    assert message.startswith(f"Klaviyo {status} on GET /api/metrics?page[size]=10 (stream metrics): ")
    assert message.endswith(detail[:299]) or message.endswith(detail[:299] + "…")


def test_an_error_detail_is_one_line_without_escapes_and_bounded() -> None:
    detail = "\x1b[2J\x1b]0;pwned\x07Bad\r\nfilter\t" + "x" * 5_000_000
    with always(400, klaviyo_error(400, detail)) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url))
    message = str(raised.value)
    assert message.startswith("Klaviyo 400 on GET /api/metrics?page[size]=10 (stream metrics): Bad filter xxx")
    assert "\x1b" not in message and "\n" not in message and "\r" not in message and "pwned" not in message
    detail_shown = message.split("(stream metrics): ", 1)[1]
    assert len(detail_shown) == 300 and detail_shown.endswith("…")


def test_the_key_echoed_in_an_error_detail_is_masked() -> None:
    def echo(handler, hit) -> None:
        send(handler, 400, klaviyo_error(400, f"bad header {hit.headers['authorization']}"))

    with HostileApi(echo) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url))
    assert str(raised.value) == "Klaviyo 400 on GET /api/metrics?page[size]=10 (stream metrics): bad header Klaviyo-API-Key ***"


def test_the_key_echoed_in_a_non_json_error_body_is_masked() -> None:
    with HostileApi(lambda handler, hit: send(handler, 500, f"<pre>{hit.headers}</pre>")) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, max_attempts=1))
    assert KEY not in str(raised.value) and "Klaviyo-API-Key ***" in str(raised.value)


def test_a_gzip_bomb_is_refused_at_the_size_cap() -> None:
    bomb = gzip_bomb(8)
    assert len(bomb) < 100_000
    with always(200, bomb, {"Content-Encoding": "gzip"}) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url, max_response_mb=2))
    assert str(raised.value) == (
        "Klaviyo sent a response larger than 2 MB on GET /api/metrics?page[size]=10 (stream metrics)\n"
        "  hint: raise api.max_response_mb in the spec if such pages are expected"
    )
    assert len(api.hits) == 1  # not retried


def test_a_gzip_body_under_the_cap_is_read() -> None:
    with always(200, gzip.compress(b'{"data": []}'), {"Content-Encoding": "gzip"}) as api:
        assert get(client(api.url)).body == {"data": []}


def test_json_nested_5000_deep_is_an_api_error() -> None:
    with always(200, b"[" * 5000 + b"]" * 5000) as api:
        with pytest.raises(ApiError) as raised:
            get(client(api.url))
    assert str(raised.value) == "Klaviyo sent JSON nested too deeply to read on GET /api/metrics?page[size]=10 (stream metrics)"


NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-5", -5.0),
        ("inf", float("inf")),
        ("1e999", float("inf")),
        ("9" * 400, float("9" * 400)),
        ("nan", None),
        ("soon", None),
        ("", None),
        (None, None),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), -3600.0),
        ("Sun, 31 Feb 2026 99:99:99 GMT", None),
    ],
)
def test_retry_after_forms_are_read_without_raising(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, now=NOW) == seconds


@pytest.mark.parametrize(("header", "low", "high"), [("-5", 0, 0.25), ("nan", 0, 1), ("inf", 60, 60), ("9" * 400, 60, 60), ("garbage", 0, 1), ("3", 3, 3.25)])
def test_retry_after_waits_are_clamped_to_zero_and_max_wait(header: str, low: float, high: float) -> None:
    clock = Clock()

    def respond(handler, hit) -> None:
        if len(api.hits) == 1:
            send(handler, 429, klaviyo_error(429, "Throttled."), {"Retry-After": header})
        else:
            send(handler, 200, {"data": []})

    with HostileApi(respond) as api:
        assert get(client(api.url, clock)).body == {"data": []}
    (waited,) = clock.slept
    assert low <= waited <= high


def test_every_retry_is_logged_once_with_its_wait(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with always(503, klaviyo_error(503, "down")) as api:
        with pytest.raises(ApiError):
            get(client(api.url, clock, max_attempts=3))
    logged = [r.getMessage() for r in caplog.records if r.name == "klx.http" and r.levelname == "WARNING"]
    assert logged == [f"HTTP 503 on GET /api/metrics?page[size]=10; retry {n}/2 in {w:.1f}s" for n, w in zip((1, 2), clock.slept)]


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ("    total_seconds: 0\n", "api.retry.total_seconds: must be a positive number"),
        ("    request_timeout_seconds: .inf\n", "api.retry.request_timeout_seconds: must be a positive number"),
        ("    request_timeout_seconds: -1\n", "api.retry.request_timeout_seconds: must be a positive number"),
    ],
)
def test_request_limits_in_the_spec_must_be_positive(tmp_path, new: str, message: str) -> None:
    from engine.errors import SpecError

    text = default_spec_path().read_text()
    anchor = "    max_wait_seconds: 60\n"
    path = tmp_path / "klaviyo.yaml"
    path.write_text(text.replace(anchor, anchor + new, 1))
    line = next(i for i, row in enumerate(path.read_text().splitlines(), 1) if row == new.rstrip("\n"))
    with pytest.raises(SpecError) as raised:
        Spec.from_yaml(path)
    assert str(raised.value) == f"{path}:{line}: {message}"


def test_request_limits_are_read_from_the_spec(tmp_path) -> None:
    text = default_spec_path().read_text()
    anchor = "    max_wait_seconds: 60\n"
    path = tmp_path / "klaviyo.yaml"
    path.write_text(text.replace(anchor, anchor + "    request_timeout_seconds: 30\n    total_seconds: 90\n", 1).replace("  records: data\n", "  records: data\n  max_response_mb: 16\n", 1))
    api = Spec.from_yaml(path).api
    assert (api.retry.request_timeout_seconds, api.retry.total_seconds, api.retry.max_wait_seconds, api.max_response_mb) == (30, 90, 60, 16)


def test_with_verbose_every_request_is_logged_with_its_status_and_size(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="klx.http")
    with always(200, {"data": []}) as api:
        get(client(api.url))
    (line,) = [r.getMessage() for r in caplog.records if r.name == "klx.http"]
    assert re.fullmatch(r"GET /api/metrics\?page\[size\]=10 \(stream metrics\): 200, 12 bytes in \d+\.\d\ds", line)


def test_requests_through_an_http_proxy_are_cut_the_same_way() -> None:
    from engine.http import _Adapter, _HTTPSPool

    manager = _Adapter().proxy_manager_for("http://127.0.0.1:3128")
    assert manager.pool_classes_by_scheme["https"] is _HTTPSPool


def test_a_tls_failure_is_not_retried_and_names_its_reason() -> None:
    clock = Clock()
    with always(200, {"data": []}) as api:  # plain HTTP: the TLS handshake fails
        with pytest.raises(ApiError) as raised:
            get(client(api.url.replace("http://", "https://"), clock))
    assert clock.slept == []
    assert re.fullmatch(r"Klaviyo: TLS failed on GET /api/metrics\?page\[size\]=10 \(stream metrics\): [A-Z_]+\n"
                        r"  hint: behind a TLS-inspecting proxy, point REQUESTS_CA_BUNDLE at its CA certificate", str(raised.value)), str(raised.value)
