"""`klx discover`: what the spec offers (resource, sync modes, key, cursor, endpoint, rate limit, scopes),
and with --columns each table's columns as last loaded; a JSON object a line with --log-format json."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from ..config import default_spec_path
from ..destinations import build_destination
from ..errors import ConfigError, json_line
from ..spec import Spec
from . import config_without_secrets


def resource_fields(spec: Spec, name: str) -> dict[str, Any]:
    """What discover says of one resource, as JSON fields: lists for what the table joins, null for its "-"."""
    s = spec.streams[name]
    tier = spec.api.rate_limit_tiers[s.rate_limit] if s.rate_limit else None
    return {
        "resource": name, "sync_modes": list(s.sync_modes), "primary_key": list(s.primary_key), "cursor": s.cursor.field if s.cursor else None,
        "endpoint": s.path, "parent": s.parent.stream if s.parent else None,
        "rate_limit": {"tier": s.rate_limit, "burst_per_second": tier.burst, "steady_per_minute": tier.steady} if tier else None,
        "buckets": [b.name for b in spec.api.buckets_for(s.params)] if tier else [], "scopes": list(s.scopes),
    }


def resource_rows(spec: Spec) -> list[tuple[str, ...]]:
    """resource_fields of each resource as a row of text: resource, sync modes, key, cursor, endpoint, rate limit (the
    endpoint's tier with its numbers, plus any named bucket its own parameters select), scopes."""
    rows = []
    for name in sorted(spec.streams):
        f = resource_fields(spec, name)
        endpoint = f["endpoint"] if f["parent"] is None else f"{f['endpoint']} (per {f['parent']})"
        limit = f["rate_limit"]
        shown = "-" if limit is None else f"{limit['tier']} ({limit['burst_per_second']}/s, {limit['steady_per_minute']}/m)"
        shown += "".join(f" + {bucket}" for bucket in f["buckets"])
        rows.append((name, ", ".join(f["sync_modes"]), ", ".join(f["primary_key"]), f["cursor"] or "-", endpoint, shown, ", ".join(f["scopes"]) or "-"))
    return rows


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
            # As the warehouse stores it (KL_RUDDER_X on Snowflake): information_schema knows it by that name only.
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
