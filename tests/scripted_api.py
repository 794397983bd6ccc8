"""A tiny local API that answers whatever a test scripts (hostile bodies, statuses), and a spec describing it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

API_KEY = "acme_test_key_0123456789"

SPEC = """\
api:
  name: Acme
  base_url: https://api.acme.invalid
  auth: {header: Authorization, value: "Bearer {api_key}"}
  records: data
  record_format: jsonapi
  included: included
  error_detail: "errors[0].detail"
  table: "acme_{stream}"
  pagination: {type: next_link, next: links.next}
  retry: {max_attempts: 2, max_wait_seconds: 0}
streams:
  items:
    path: /items
    primary_key: [id]
    cursor: {field: updated}
    sync_modes: [full_refresh, incremental]
  groups:
    path: /groups
    primary_key: [id]
  members:
    path: "/groups/{parent.id}/members"
    parent: {stream: groups, fields: {id: group_id}, skip_statuses: [404]}
    primary_key: [group_id, id]
"""


def page(*records: dict[str, Any], next_url: str | None = None, included: list | None = None) -> dict[str, Any]:
    """A JSON:API page body."""
    body: dict[str, Any] = {"data": list(records), "links": {"next": next_url}}
    if included is not None:
        body["included"] = included
    return body


def item(ident: Any, updated: str = "2025-01-01T00:00:00+00:00", **attributes: Any) -> dict[str, Any]:
    """A JSON:API resource with an `updated` attribute."""
    return {"type": "item", "id": ident, "attributes": {"updated": updated, **attributes}}


def not_found(detail: str = "Not found.") -> tuple[int, dict[str, Any]]:
    """A 404 answer with a JSON:API error body."""
    return 404, {"errors": [{"status": 404, "detail": detail}]}


class ScriptedApi:
    """Serves `routes` (path, or path?query -> body, or (status, body)) on 127.0.0.1; unknown paths get 404."""

    def __init__(self) -> None:
        self.routes: dict[str, Any] = {}
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                api.requests.append(self.path)
                parts = urlsplit(self.path)
                answer = api.routes.get(self.path, api.routes.get(parts.path))
                status, body = answer if isinstance(answer, tuple) else (200, answer)
                if answer is None:
                    status, body = not_found(f"no route {parts.path}")
                payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ScriptedApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def write_spec(self, folder: Path) -> Path:
        """The spec file describing this API."""
        return write_spec(folder)


def write_spec(folder: Path) -> Path:
    """The spec file describing the scripted API (its base_url is the config's to set)."""
    path = folder / "acme.yaml"
    path.write_text(SPEC)
    return path
