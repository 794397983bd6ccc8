"""The Simulator: data store + a ThreadingHTTPServer speaking Klaviyo's REST API on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import struct
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from klaviyo_sim import errors
from klaviyo_sim.control import control
from klaviyo_sim.faults import FaultConfig, Faults
from klaviyo_sim.jsonapi import EPOCH, dumps
from klaviyo_sim.query import Query, Reply, route
from klaviyo_sim.ratelimit import PREDICTIVE, RateLimiter
from klaviyo_sim.specdata import REVISION
from klaviyo_sim.store import Store

# GA revisions accepted in the `revision` header; every one is answered with 2026-07-15 shapes.
KNOWN_REVISIONS = ("2023-02-22", "2023-06-15", "2023-07-15", "2023-08-15", "2023-09-15", "2023-10-15",
                   "2023-12-15", "2024-02-15", "2024-05-15", "2024-06-15", "2024-07-15", "2024-10-15",
                   "2025-01-15", "2025-04-15", "2025-07-15", "2025-10-15", "2026-01-15", "2026-04-15", REVISION)
_REVISION = re.compile(r"(\d{4}-\d{2}-\d{2})(\.pre)?$")
# Query parameters younger than some accepted revisions (API-NOTES §6): an older revision refuses them.
PARAMS_SINCE = {("/api/campaigns", "page[size]"): "2026-04-15", ("/api/templates", "page[size]"): "2026-04-15",
                ("/api/lists", "page[size]"): "2026-04-15", ("/api/segments", "page[size]"): "2026-04-15",
                ("/api/events", "page[size]"): "2026-01-15"}
JSONAPI = "application/vnd.api+json"


def check_revision(value: str | None) -> None:
    """Klaviyo's revision rules as observed (API-NOTES §1.2); missing is a 400 here (unknown upstream)."""
    if value is None:
        raise errors.invalid(f"Missing required header 'revision'. Send a revision such as '{REVISION}'.",
                             parameter="revision")
    match = _REVISION.match(value.strip())
    if not match:
        raise errors.invalid(f"Invalid revision '{value}'; expected YYYY-MM-DD.", parameter="revision")
    if match.group(1) > REVISION:
        raise errors.not_found("Unable to specify a future revision date")
    if match.group(1) not in KNOWN_REVISIONS:
        raise errors.not_found("No valid revisions found for method")


class Simulator:
    """A local Klaviyo: `start()` serves it, `truth()` says what a correct sync lands, `mutate()` changes it."""

    def __init__(self, seed: int = 0, scale: float = 1.0, now: datetime | None = None,
                 api_key: str = "pk_sim_demo_key", latency: float = 0.0, rate_limits: bool = False,
                 faults: FaultConfig | float | None = None, host: str = "127.0.0.1", limit_fraction: float = 1.0,
                 cache_responses: bool = False) -> None:
        if now is None:
            now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.seed, self.scale, self.now = seed, scale, now.astimezone(timezone.utc)
        self.api_key, self.latency, self.host = api_key, latency, host
        self.store = Store(seed, scale, self.now)
        self.limiter = RateLimiter(enforce=rate_limits, fraction=limit_fraction)
        self.faults = Faults(FaultConfig(rate=faults, seed=seed) if isinstance(faults, (int, float)) else faults)
        self.request_log: list[tuple[str, str, dict[str, str]]] = []
        # Benchmarks only: a 200's encoded body, served again for the same request while the data is unchanged
        # (keyed by the sim clock, which every change moves). Rendering is the stand-in's cost, not Klaviyo's:
        # a warm cache leaves the machine's cores to the client being measured. Auth, revision, parameter
        # checks, rate limits and faults still apply to every request.
        self.cache_responses = cache_responses
        self._responses: dict[tuple[int, str, str, str], tuple[int, bytes, tuple[tuple[str, str], ...]]] = {}
        self.url: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def rate_limits(self) -> bool:
        """Whether 429s are enforced."""
        return self.limiter.enforce

    @rate_limits.setter
    def rate_limits(self, on: bool) -> None:
        self.limiter.enforce = on

    def start(self, port: int = 0) -> str:
        """Serve in a background thread; returns and sets `.url`."""
        sim = self

        class Handler(_Handler):
            simulator = sim

        self._server = _Server((self.host, port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{self.host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="klaviyo-sim", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Simulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def truth(self, resource: str, start_date: str | datetime | None = None) -> list[dict]:
        """Records a correct sync of klx resource `resource` from `start_date` must land."""
        return self.store.truth(resource, start_date)

    def mutate(self, resource: str, update: int = 0, create: int = 0, delete: int = 0, suppress: int = 0,
               lift: int = 0, resuppress: int = 0) -> dict[str, list[str]]:
        """Change N records at the sim clock (+60 s per call); returns affected ids by action.

        Profiles also take `suppress` (new global suppressions, `updated` unchanged), `resuppress` (a second
        suppression of a suppressed profile, `updated` unchanged) and `lift` (suppressions removed, `updated`
        moves); see Store.mutate.
        """
        return self.store.mutate(resource, update=update, create=create, delete=delete, suppress=suppress, lift=lift,
                                 resuppress=resuppress)

    def clock(self) -> datetime:
        """The sim clock (starts at `now`, +60 s per mutate call)."""
        return EPOCH + timedelta(microseconds=self.store.clock_us)

    def handle_api(self, method: str, path: str, raw_query: str, headers: dict[str, str], base: str) -> Reply:
        """Everything after faults for one /api request: auth, revision, rate limit, query."""
        try:
            auth = headers.get("authorization")
            if not auth:
                raise errors.not_authenticated()
            scheme, _, key = auth.partition(" ")
            if scheme != "Klaviyo-API-Key" or key.strip() != self.api_key:
                raise errors.authentication_failed()
            check_revision(headers.get("revision"))
            if method != "GET":
                raise errors.ApiError(status=405, code="method_not_allowed", title="Method not allowed.",
                                      detail=f'Method "{method}" not allowed.', meta=None)
            op, ep, _ = route(path)
            revision = headers.get("revision", "").strip()[:10]
            for name, _ in parse_qsl(raw_query, keep_blank_values=True):
                if revision < PARAMS_SINCE.get((op.path, name), revision):
                    raise errors.unsupported_page_size(ep.type) if name == "page[size]" else errors.invalid(
                        f"'{name}' is not a valid query parameter for this resource.", parameter=name)
            buckets = [(op.path, op.burst, op.steady)]
            if "predictive_analytics" in dict(parse_qsl(raw_query)).get("additional-fields[profile]", ""):
                buckets.append(PREDICTIVE)
            verdict = self.limiter.hit(buckets)
            if not verdict.allowed:
                raise errors.throttled(verdict.retry_after)
            reply = self._query(path, raw_query, base)
            # Without limits (rate_limits off) no window can run out, so none is described: headers counting down
            # to a window that refuses nothing made a client that paces by them wait up to a minute for nothing.
            rate = (("RateLimit-Limit", str(verdict.limit)), ("RateLimit-Remaining", str(verdict.remaining)),
                    ("RateLimit-Reset", str(verdict.reset))) if self.limiter.enforce else ()
            return Reply(status=reply.status, body=reply.body, headers=reply.headers + rate)
        except errors.ApiError as err:
            return Reply(status=err.status, body=err.body(), headers=err.headers)


    def _query(self, path: str, raw_query: str, base: str) -> Reply:
        """The query's reply; with `cache_responses`, a 200 answered before (same data) is served from memory."""
        if not self.cache_responses:
            return Query(self.store, path, raw_query, base).run()
        key = (self.store.clock_us, path, raw_query, base)
        cached = self._responses.get(key)
        if cached is None:
            reply = Query(self.store, path, raw_query, base).run()
            if reply.status != 200:
                return reply
            if self._responses and next(iter(self._responses))[0] != key[0]:
                self._responses.clear()  # the data changed since those were kept: none can be served again
            cached = self._responses[key] = (reply.status, dumps(reply.body), reply.headers)
        status, body, headers = cached
        return Reply(status=status, body=body, headers=headers)


class _Server(ThreadingHTTPServer):
    """The HTTP server, quiet about clients that hang up before their answer is written."""

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        # A client stopped mid-request (Ctrl-C on `klx demo` cuts its requests in flight): socketserver printed a
        # traceback per such request over the client's own output. Any other error keeps its traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    simulator: Simulator
    protocol_version = "HTTP/1.1"
    server_version = "klaviyo-sim"
    sys_version = ""
    # Headers and body go out as two writes; without TCP_NODELAY the second can wait on a delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass

    def _send(self, status: int, body: dict | bytes, headers: tuple[tuple[str, str], ...] = (),
              truncate: bool = False, content_type: str = JSONAPI) -> None:
        payload = body if isinstance(body, bytes) else dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        if truncate:
            # A 200 whose JSON stops half way: no Content-Length, then the connection closes.
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else {}

    def _dispatch(self, method: str) -> None:
        sim = self.simulator
        parts = urlsplit(self.path)
        if parts.path.startswith("/_sim/"):
            try:
                status, body = control(sim, method, parts.path, dict(parse_qsl(parts.query)), self._body())
            except (ValueError, KeyError, json.JSONDecodeError) as err:
                status, body = 400, {"error": str(err)}
            self._send(status, body, content_type="application/json")
            return
        if method != "GET" and self.headers.get("Content-Length"):
            self._body()
        sim.request_log.append((method, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))))
        if sim.latency:
            time.sleep(sim.latency)
        fault = sim.faults.draw() if parts.path.startswith("/api") else None
        if fault == "reset":
            self._reset()
            return
        if fault in ("500", "502", "503"):
            err = errors.server_error(int(fault))
            self._send(err.status, err.body())
            return
        if fault == "slow":
            time.sleep(sim.faults.config.slow_seconds)
        base = f"http://{self.headers.get('Host') or sim.url}"
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = sim.handle_api(method, parts.path, parts.query, headers, base)
        self._send(reply.status, reply.body, reply.headers, truncate=fault == "truncated" and reply.status == 200)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")
