"""`klx discover`: what the spec offers (resource, sync modes, key, cursor, endpoint, rate limit, scopes),
and with --columns each table's columns as last loaded; a JSON object a line with --log-format json."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from ..config import default_spec_path
from ..destinations import build_destination
from ..errors import ConfigError, json_line
from ..spec import ApiSpec, Spec, StreamSpec
from . import config_without_secrets


def rate_limit(api: ApiSpec, stream: StreamSpec) -> str:
    """The stream's endpoint tier with its numbers, plus any named bucket its own parameters select."""
    if not stream.rate_limit:
        return "-"
    tier = api.rate_limit_tiers[stream.rate_limit]
    text = f"{stream.rate_limit} ({tier.burst}/s, {tier.steady}/m)"
    buckets = [b.name for b in api.buckets_for(stream.params)]
    return text + "".join(f" + {name}" for name in buckets)


def resource_rows(spec: Spec) -> list[tuple[str, ...]]:
    """One row per resource: resource, sync modes, key, cursor, endpoint, rate limit, scopes."""
    rows = []
    for name in sorted(spec.streams):
        s = spec.streams[name]
        endpoint = s.path if s.parent is None else f"{s.path} (per {s.parent.stream})"
        cursor = s.cursor.field if s.cursor else "-"
        rows.append((name, ", ".join(s.sync_modes), ", ".join(s.primary_key), cursor, endpoint, rate_limit(spec.api, s), ", ".join(s.scopes) or "-"))
    return rows


def resource_fields(spec: Spec, name: str) -> dict[str, Any]:
    """The resource's row as JSON fields: lists for what the table joins, null for its "-"."""
    s = spec.streams[name]
    tier = spec.api.rate_limit_tiers[s.rate_limit] if s.rate_limit else None
    return {
        "resource": name, "sync_modes": list(s.sync_modes), "primary_key": list(s.primary_key), "cursor": s.cursor.field if s.cursor else None,
        "endpoint": s.path, "parent": s.parent.stream if s.parent else None,
        "rate_limit": {"tier": s.rate_limit, "burst_per_second": tier.burst, "steady_per_minute": tier.steady} if tier else None,
        "buckets": [b.name for b in spec.api.buckets_for(s.params)] if tier else [], "scopes": list(s.scopes),
    }


def discover(config_path: Path | None, *, columns: bool = False, as_json: bool = False, out: TextIO | None = None) -> int:
    """Print the resource table of the config's spec (the bundled one without a config); --columns needs a config."""
    out = out or sys.stdout
    config = config_without_secrets(config_path) if config_path is not None else None
    spec = Spec.from_yaml(config.source.spec if config else default_spec_path())
    if columns and config is None:  # refused before anything is printed: one error, not a table then an error
        raise ConfigError("--columns reads the tables a config loads into: pass the config, e.g. klx discover config.yaml --columns")
    if as_json:
        for name in sorted(spec.streams):
            print(json_line("resource", **resource_fields(spec, name)), file=out)
    else:
        header = ("resource", "sync modes", "key", "cursor", "endpoint", "rate limit", "scopes")
        rows = resource_rows(spec)
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)
    if not columns:
        return 0
    selected = [r.name for r in config.resources]
    destination = build_destination(config.destination, create=False)  # it only reads
    try:
        for name in selected:
            table = config.destination.table_prefix + spec.api.table.format(stream=name)
            # As the warehouse stores it (KL_RUDDER_LISTS on Snowflake): information_schema knows it by that name only.
            table = destination.name(table) if hasattr(destination, "name") else table
            found = {column: dtype.sql(destination.dialect) if hasattr(dtype, "sql") else str(dtype)
                     for column, dtype in destination.columns_of(table).items()}
            if as_json:  # not loaded yet: loaded false, no columns
                listed = [{"name": column, "type": shown} for column, shown in found.items()]
                print(json_line("columns", resource=name, table=table, loaded=bool(found), columns=listed), file=out)
                continue
            print(file=out)
            if not found:
                print(f"{table}: not loaded yet", file=out)
                continue
            print(f"{table} ({len(found)} columns)", file=out)
            for column, shown in found.items():
                print(f"  {column:<40} {shown}", file=out)
    finally:
        destination.close()
    return 0
