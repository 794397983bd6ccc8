"""`klx check`: is everything in place before the first sync? Config and spec, one authenticated call, each
selected resource's scope (one small request each), the destination opened and writable, the run's lock file
creatable beside the config. One line per check (a JSON object with --log-format json); an unreachable host fails in
seconds naming the host and the cause."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
import sys
from pathlib import Path
from typing import Callable, TextIO
from urllib.parse import urlsplit

from ..config import Config
from ..destinations import build_destination, config_relative
from ..errors import ApiError, ConfigError, KlxError, json_line
from ..http import HttpClient, transport_reason
from ..lock import RunLock
from ..plan import build_plan, load_spec
from ..spec import Spec, StreamSpec

CHECK_SECONDS = 10.0  # one attempt per request, no retries: a check answers in seconds


def check(config_path: Path, *, as_json: bool = False, out: TextIO | None = None) -> int:
    """Run every check; exit 0 only when all pass, else the exit code of the first failure."""
    out = out or sys.stdout
    failures: list[KlxError] = []

    def line(ok: bool, what: str, text: str) -> None:
        shown = json_line("check", check=what, ok=ok, message=text) if as_json else f"{'ok  ' if ok else 'FAIL'} {what:<24} {text}"
        print(shown, file=out, flush=True)

    try:
        config = Config.from_yaml(config_path)
        spec = load_spec(config)
    except ConfigError as err:  # SpecError is a ConfigError's sibling: both exit 2
        line(False, "config and spec", _one_line(err))
        return err.exit_code
    except KlxError as err:
        line(False, "config and spec", _one_line(err))
        return err.exit_code
    line(True, "config and spec", f"{config_path}: {len(config.resources)} resources; spec {config.source.spec.name}")

    api = dataclasses.replace(
        spec.api, retry=dataclasses.replace(spec.api.retry, max_attempts=1, request_timeout_seconds=CHECK_SECONDS, total_seconds=CHECK_SECONDS)
    )
    try:
        http: HttpClient | None = HttpClient(api, config.source.api_key, config.source.base_url)
    except KlxError as err:  # REQUESTS_CA_BUNDLE naming no file: every request would fail
        failures.append(err)
        line(False, "API key", _one_line(err))
        http = None
    # Each probe is the stream's real first request (filters, includes, partitions), with a page of one record.
    plan = build_plan(config, spec, {}, datetime.now(timezone.utc))
    params = {p.stream.name: p.partitions[0].params if p.partitions else dict(p.stream.params) for p in plan.streams}
    for p in plan.streams:
        if p.parent is not None:
            params.setdefault(p.parent.stream.name, p.parent.partitions[0].params if p.parent.partitions else dict(p.parent.stream.params))
    try:
        streams = [spec.streams[r.name] for r in config.resources]
        first = next((s for s in streams if s.parent is None), None) if http is not None else None
        reachable = http is not None
        if first is not None:
            try:
                _probe(http, spec, first, params)
                line(True, "API key", f"{http.base_url} accepted the key (GET {first.path})")
            except ApiError as err:
                failures.append(err)
                reachable = err.status is not None
                if err.status == 403:  # the key works; this resource's scope is checked below
                    line(True, "API key", f"{http.base_url} accepted the key")
                else:
                    line(False, "API key", _why(err, http.base_url))
        if reachable and not (failures and failures[0].status == 401):
            failures.clear()
            for stream in streams:
                failures += _scope(http, spec, stream, params, line)
    finally:
        if http is not None:
            http.close()

    try:
        destination = build_destination(config.destination)
        try:
            _writable(destination)
        finally:
            destination.close()
        line(True, "destination", f"{config.destination.type} {_where(config)} opened and writable")
    except KlxError as err:
        failures.append(err)
        line(False, "destination", _one_line(err))

    lock = RunLock.for_config(config.path, config.destination.table_prefix)
    try:
        lock.check()  # `klx run` creates it beside the config: a folder it cannot write in stops every run
        line(True, "lock", f"{lock.path} writable")
    except KlxError as err:
        failures.append(err)
        line(False, "lock", _one_line(err))
    return failures[0].exit_code if failures else 0


def _probe(http: HttpClient, spec: Spec, stream: StreamSpec, first: dict[str, dict[str, str]], path: str | None = None) -> list:
    """One small page of `stream` (page size 1 where the endpoint takes one); its records."""
    params = dict(first.get(stream.name, stream.params))
    if stream.page_size is not None and spec.api.page_size_param:
        params[spec.api.page_size_param] = "1"
    page = http.get(http.url_for(path or stream.path), params, stream=stream.name, endpoint=stream.path, tier=None, scopes=stream.scopes)
    import jmespath

    found = jmespath.search(spec.api.records, page.body)
    return found if isinstance(found, list) else []


def _scope(
    http: HttpClient, spec: Spec, stream: StreamSpec, first: dict[str, dict[str, str]], line: Callable[[bool, str, str], None]
) -> list[KlxError]:
    scopes = ", ".join(stream.scopes) or "no scope listed"
    try:
        if stream.parent is None:
            _probe(http, spec, stream, first)
        else:
            parent = spec.streams[stream.parent.stream]
            records = _probe(http, spec, parent, first)
            if not records:
                line(True, f"scope {stream.name}", f"{scopes}: no {parent.name} to probe with; checked {parent.path}")
                return []
            key = records[0].get("id") if isinstance(records[0], dict) else None
            _probe(http, spec, stream, first, stream.path.replace("{parent.id}", str(key)))
    except ApiError as err:
        if err.status == 403:
            line(False, f"scope {stream.name}", f"403 on GET {stream.path}: the key lacks {scopes}")
        else:
            line(False, f"scope {stream.name}", _why(err, http.base_url))
        return [err]
    line(True, f"scope {stream.name}", scopes)
    return []


def _why(err: ApiError, base_url: str) -> str:
    """The error in one line; for a host that did not answer, which host and why (refused, DNS, TLS, timeout)."""
    if err.status is not None:
        return _one_line(err)
    host = urlsplit(base_url).netloc
    why = transport_reason(err)
    if why == "no answer":
        why = f"no answer within {CHECK_SECONDS:.0f}s"
    return f"cannot reach {host}: {why or err.message}"


def _writable(destination: object) -> None:
    """Write the state table inside a transaction that is rolled back: proves the grant, leaves nothing."""

    class _Undo(Exception):
        pass

    ensure = getattr(destination, "ensure_state_table", None)
    if ensure is not None:
        ensure()
    try:
        with destination.transaction():  # type: ignore[attr-defined]
            destination.save_state("__klx_check__", {"version": 1, "cursor": {}, "columns": []})  # type: ignore[attr-defined]
            raise _Undo
    except _Undo:
        pass


def _where(config: Config) -> str:
    options = config.destination.options
    path = options.get("path")
    if isinstance(path, str) and not path.startswith((":memory:", "md:")):
        # The file a run writes: a relative path resolves against the config's folder, not where check runs.
        return config_relative(config.destination, path)
    return str(path or options.get("database") or options.get("host") or "")


def _one_line(err: KlxError) -> str:
    text = f"{err.where}: {err.message}" if err.where else err.message
    return text + (f" (hint: {err.hint})" if err.hint else "")
