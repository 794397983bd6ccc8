"""Checks against Klaviyo's 2026-07-15 OpenAPI file: declared query params and response schemas."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from urllib.parse import urlsplit

from klaviyo_sim.specdata import full_spec_path, match_path


def undeclared_params(path: str, query: Mapping[str, str]) -> list[str]:
    """Names in `query` that the spec does not declare for GET `path` (templated paths match, e.g. /api/segments/X/profiles)."""
    found = match_path(urlsplit(path).path)
    if found is None:
        raise ValueError(f"the 2026-07-15 spec has no GET operation for {path!r}")
    declared = found[0].params
    return [name for name in query if name not in declared]


def _relax(node: object) -> object:
    """oneOf → anyOf: Klaviyo's oneOf branches overlap (e.g. the three identical *SendOptions), so
    strict oneOf rejects every real payload; also let CollectionLinks next/prev be null, as recorded
    responses send them (API-NOTES §1.3). A `nullable` oneOf also admits null, as OAS 3.0 intends."""
    if isinstance(node, dict):
        out = {("anyOf" if k == "oneOf" else k): _relax(v) for k, v in node.items()}
        if "oneOf" in node and node.get("nullable"):
            out["anyOf"] = [*out["anyOf"], {"enum": [None]}]
        return out
    if isinstance(node, list):
        return [_relax(v) for v in node]
    return node


@cache
def _components() -> dict:
    spec = json.loads(full_spec_path().read_text())
    components = _relax(spec["components"])
    for name in ("prev", "next"):
        components["schemas"]["CollectionLinks"]["properties"][name]["nullable"] = True
    return {"spec": spec, "components": components}


def response_schema(path: str, status: int) -> dict:
    """The (relaxed) JSON schema of GET `path`'s response body for `status`."""
    loaded = _components()
    found = match_path(urlsplit(path).path)
    if found is None:
        raise ValueError(f"no GET operation for {path!r}")
    responses = loaded["spec"]["paths"][found[0].path]["get"]["responses"]
    entry = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
    if "$ref" in entry:
        entry = loaded["components"]["responses"][entry["$ref"].rsplit("/", 1)[1]]
    schema = next(iter(entry["content"].values()))["schema"]
    return {**_relax(schema), "components": loaded["components"]}


def schema_errors(path: str, status: int, body: object) -> list[str]:
    """Validation messages for `body` (empty when it conforms); needs openapi-schema-validator."""
    from openapi_schema_validator import OAS30Validator

    validator = OAS30Validator(response_schema(path, status))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in validator.iter_errors(body)]
