"""Response bodies -> Python values, reading only what the spec's record format uses.

A JSON:API page spends about half its bytes on `links` (a self and a related URL for every resource and
every relationship) that normalising never reads: records take a resource's type, id, attributes and each
relationship's data (engine/records.py, derive.flat). For a JSON:API spec whose records and included
resources are top-level members, those two members are decoded with a schema (msgspec) that skips
everything else inside a resource, so the skipped text never becomes Python strings; every other member,
and any body the schema does not fit, is read whole exactly as http.parse_body reads it.
"""

from __future__ import annotations

import re
from typing import Any, Callable, TypedDict

import msgspec

from .spec import ApiSpec

_MEMBER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a jmespath expression that selects one top-level member


class _Relationship(TypedDict, total=False):
    data: Any  # its links and meta are never read


class _Resource(TypedDict, total=False):
    type: Any
    id: Any
    attributes: Any
    relationships: dict[str, _Relationship]


_members = msgspec.json.Decoder(dict[str, msgspec.Raw])  # the top-level members, each left as its bytes
_resources = msgspec.json.Decoder(list[_Resource])
_anything = msgspec.json.Decoder()


def body_parser(api: ApiSpec, parse_body: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """A function reading one response body as `parse_body` does, minus what `api`'s records never use."""
    if api.record_format != "jsonapi":
        return parse_body
    lists = {expression for expression in (api.records, api.included) if expression and _MEMBER.fullmatch(expression)}
    if not lists:
        return parse_body

    def parse(body: bytes) -> Any:
        # No look for integers beyond 64 bits (has_long_integer, which parse_body needs for orjson): msgspec
        # reads them exactly, as json does, and its floats are json's too (tests/test_bodies.py compares
        # numbers of up to 41 digits). Profiled: the look, a pass over the whole body, took 2.3 of the 10.9 CPU
        # µs a record of parsing events.
        try:
            members = _members.decode(body)
            return {name: _member(name in lists, raw) for name, raw in members.items()}
        except msgspec.MsgspecError:  # not an object, not JSON, or what only json reads (NaN): as parse_body does
            return parse_body(body)

    return parse


def _member(resources: bool, raw: msgspec.Raw) -> Any:
    if resources:
        try:
            return _resources.decode(raw)
        except msgspec.ValidationError:  # not a list of resource objects (one resource, odd items): read whole
            pass
    return _anything.decode(raw)


def has_long_integer(body: bytes) -> bool:
    """Whether `body` has a run of 19 digits anywhere: an integer that may not fit 64 bits, which orjson and
    msgspec would read as a float (losing digits) or refuse. Rare, and cheap to look for."""
    return body.translate(_DIGITS).find(_LONG_NUMBER) >= 0


_DIGITS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))  # every digit -> "0", anything else -> " "
_LONG_NUMBER = b"0" * 19  # -9223372036854775809 has 19 digits and no longer fits 64 bits
