"""A scripted HTTP server on 127.0.0.1 for the answers the simulator never gives: hangs, trickles, bombs, bad links."""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Hit:
    """One request the server received."""

    path: str
    headers: dict[str, str]


@dataclass
class HostileApi:
    """Serves `respond(handler, hit)` for every GET; records each hit. Use as a context manager."""

    respond: Callable[[BaseHTTPRequestHandler, Hit], None]
    hits: list[Hit] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> "HostileApi":
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                hit = Hit(self.path, {k.lower(): v for k, v in self.headers.items()})
                api.hits.append(hit)
                try:
                    api.respond(self, hit)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def hang(self) -> None:
        """Keep the connection open without answering until the server stops."""
        self.stopping.wait(60)


def send(handler: BaseHTTPRequestHandler, status: int = 200, body: Any = b"", headers: dict[str, str] | None = None) -> None:
    """Answer with `body` (bytes, str, or JSON-able) and `headers`."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
    handler.wfile.flush()


def gzip_bomb(megabytes: int) -> bytes:
    """A small gzip body that inflates to `megabytes` MB of JSON-ish spaces."""
    return gzip.compress(b'{"data": [' + b" " * (megabytes * 1024 * 1024) + b"]}", compresslevel=9)


def trickle(handler: BaseHTTPRequestHandler, body: bytes, every: float, stopping: threading.Event) -> None:
    """A 200 whose body arrives one byte every `every` seconds."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    for i in range(len(body)):
        if stopping.wait(every):
            return
        handler.wfile.write(body[i : i + 1])
        handler.wfile.flush()


def metric(i: int) -> dict[str, Any]:
    """A JSON:API metric record as Klaviyo sends it."""
    return {
        "type": "metric",
        "id": f"M{i}",
        "attributes": {"name": f"Metric {i}", "created": "2024-02-01T00:00:00+00:00", "updated": "2024-02-01T00:00:00+00:00"},
    }


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll until `condition()` holds."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
