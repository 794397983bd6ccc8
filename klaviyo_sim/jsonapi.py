"""JSON:API building blocks: timestamps, resource objects, relationship links (API-NOTES §1.3)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

US = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
COLLECTIONS = {"campaign": "campaigns", "campaign-message": "campaign-messages", "template": "templates",
               "event": "events", "metric": "metrics", "flow": "flows", "flow-action": "flow-actions",
               "list": "lists", "segment": "segments", "profile": "profiles", "tag": "tags",
               "tag-group": "tag-groups", "attribution": "attributions", "account": "accounts"}


def to_us(dt: datetime) -> int:
    """Aware datetime → epoch microseconds."""
    return (dt - EPOCH) // timedelta(microseconds=1)


def iso(us: int | None, *, micro: bool = False) -> str | None:
    """Epoch µs → '2024-06-04T14:05:31+00:00' (campaigns keep 6-digit microseconds)."""
    if us is None:
        return None
    seconds, fraction = divmod(us, US)
    # strftime on gmtime is ~5x faster than datetime.isoformat, which matters for profile pages.
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{fraction:06d}+00:00" if micro else f"{text}+00:00"


def resource(base: str, type_: str, id_: str, attributes: dict | None, rels: dict | None = None) -> dict:
    """One resource object; rels maps name → list of (type, id), one (type, id), or None (links only)."""
    obj: dict = {"type": type_, "id": id_}
    if attributes is not None:
        obj["attributes"] = attributes
    root = f"{base}/api/{COLLECTIONS[type_]}/{id_}/"
    if rels:
        out = {}
        for name, data in rels.items():
            entry: dict = {}
            if isinstance(data, list):
                entry["data"] = [{"type": t, "id": i} for t, i in data]
            elif isinstance(data, tuple):
                entry["data"] = {"type": data[0], "id": data[1]}
            entry["links"] = {"self": f"{root}relationships/{name}/", "related": f"{root}{name}/"}
            out[name] = entry
        obj["relationships"] = out
    obj["links"] = {"self": root}
    return obj


def sparse(attributes: dict, wanted: list[str] | None) -> dict:
    """Apply a `fields[type]` list, keeping dotted sub-paths such as location.city."""
    if wanted is None:
        return attributes
    out: dict = {}
    for path in wanted:
        head, _, rest = path.partition(".")
        if head not in attributes:
            continue
        if not rest:
            out[head] = attributes[head]
        elif isinstance(attributes[head], dict):
            inner = sparse(attributes[head], [rest])
            merged = out.setdefault(head, {})
            if isinstance(merged, dict):
                merged.update(inner)
    return out
