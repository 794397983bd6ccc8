"""JSON:API building blocks: timestamps, resource objects, relationship links (API-NOTES §1.3)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

US = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
COLLECTIONS = {"campaign": "campaigns", "campaign-message": "campaign-messages", "template": "templates",
               "event": "events", "metric": "metrics", "flow": "flows", "flow-action": "flow-actions",
               "list": "lists", "segment": "segments", "profile": "profiles", "tag": "tags",
               "tag-group": "tag-groups", "attribution": "attributions", "account": "accounts"}


# One encoder for every body: json.dumps with non-default separators builds a new encoder per call, and the
# circular-reference check costs ~15% on profile pages; bodies are freshly built trees, never cyclic.
_ENCODE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


class Raw:
    """JSON text encoded earlier (a cached resource object), spliced into a body by `dumps` as is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def encode(value: object) -> str:
    """Compact JSON text, as every response body is written."""
    return _ENCODE(value)


def dumps(body: dict) -> bytes:
    """A response body as compact JSON; top-level lists of `Raw` fragments are joined, not re-encoded."""
    parts = []
    for key, value in body.items():
        if isinstance(value, list) and value and isinstance(value[0], Raw):
            text = "[" + ",".join(raw.text for raw in value) + "]"
        else:
            text = _ENCODE(value)
        parts.append(f"{_ENCODE(key)}:{text}")
    return ("{" + ",".join(parts) + "}").encode()


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
