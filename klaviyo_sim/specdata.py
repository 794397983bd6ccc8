"""Per-endpoint GET parameter declarations derived from Klaviyo's OpenAPI spec (MIT, klaviyo/openapi)."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REVISION = "2026-07-15"
_VENDORED = Path(__file__).with_name(f"get-params-{REVISION}.json")
# The full spec lives in shared/ beside the repo (CI lays a copy there too).
SPEC_ENV = "KLAVIYO_OPENAPI_SPEC"
_SHARED_SPEC = Path(__file__).resolve().parents[2] / "shared" / "klaviyo" / "openapi" / f"stable-{REVISION}.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class Param:
    """One declared query parameter of a GET operation."""

    name: str
    required: bool
    enum: tuple[str, ...] | None
    default: int | None
    minimum: int | None
    maximum: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """A GET operation: its path template, params, allowed filters and rate-limit tier."""

    path: str
    operation_id: str
    params: dict[str, Param]
    filters: dict[str, tuple[str, ...]]
    burst: int
    steady: int

    def param(self, name: str) -> Param | None:
        """The declared parameter `name`, or None."""
        return self.params.get(name)


def full_spec_path() -> Path:
    """Where the full OpenAPI file is (env override, else shared/ beside the repo)."""
    import os

    return Path(os.environ.get(SPEC_ENV) or _SHARED_SPEC)


def _rate(text: str) -> int:
    return int(text.split("/")[0])


def _parse_filters(description: str) -> dict[str, tuple[str, ...]]:
    """Parse the 'Allowed field(s)/operator(s)' table out of a filter description."""
    _, _, table = description.partition("Allowed field(s)/operator(s):")
    allowed: dict[str, tuple[str, ...]] = {}
    for line in table.split("<br>"):
        match = re.match(r"\s*`([^`]+)`:\s*(.*)", line)
        if match:
            allowed[match.group(1)] = tuple(re.findall(r"`([^`]+)`", match.group(2)))
    return allowed


def extract(spec: dict) -> dict:
    """Reduce a full spec to the GET parameter table vendored with the simulator."""
    out: dict[str, dict] = {}
    for path, item in spec["paths"].items():
        op = item.get("get")
        if not op:
            continue
        params, filters = [], {}
        for prm in op.get("parameters", []):
            if prm["in"] != "query":
                continue
            schema = prm.get("schema", {})
            enum = schema.get("enum") or schema.get("items", {}).get("enum")
            params.append({
                "name": prm["name"], "required": bool(prm.get("required")), "enum": enum,
                "default": schema.get("default"), "minimum": schema.get("minimum"),
                "maximum": schema.get("maximum"),
            })
            if prm["name"] == "filter":
                filters = _parse_filters(prm.get("description", ""))
        limit = op.get("x-klaviyo-ratelimit", {"burst": "10/s", "steady": "150/m"})
        out[path] = {"operation_id": op["operationId"], "params": params, "filters": filters,
                     "burst": _rate(limit["burst"]), "steady": _rate(limit["steady"])}
    return out


@cache
def operations() -> dict[str, Operation]:
    """All GET operations of the vendored revision, keyed by path template."""
    raw = json.loads(_VENDORED.read_text())
    ops = {}
    for path, op in raw.items():
        params = {p["name"]: Param(name=p["name"], required=p["required"],
                                   enum=tuple(p["enum"]) if p["enum"] else None, default=p["default"],
                                   minimum=p["minimum"], maximum=p["maximum"]) for p in op["params"]}
        ops[path] = Operation(path=path, operation_id=op["operation_id"], params=params,
                              filters={k: tuple(v) for k, v in op["filters"].items()},
                              burst=op["burst"], steady=op["steady"])
    return ops


def match_path(path: str) -> tuple[Operation, dict[str, str]] | None:
    """Find the GET operation whose template matches `path` (trailing slash optional)."""
    path = path.rstrip("/") or "/"
    ops = operations()
    if path in ops:
        return ops[path], {}
    parts = path.split("/")
    for template, op in ops.items():
        tparts = template.split("/")
        if len(tparts) != len(parts) or "{" not in template:
            continue
        bound = {}
        for t, p in zip(tparts, parts):
            if t.startswith("{") and t.endswith("}"):
                if not p:
                    break
                bound[t[1:-1]] = p
            elif t != p:
                break
        else:
            return op, bound
    return None


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else full_spec_path()
    _VENDORED.write_text(json.dumps(extract(json.loads(source.read_text())), indent=0, sort_keys=True) + "\n")
    print(f"wrote {_VENDORED}")
