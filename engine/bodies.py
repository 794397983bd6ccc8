"""Response bodies -> Python values, reading only what the spec's record format uses.

A JSON:API page spends about half its bytes on `links` (a self and a related URL for every resource and
every relationship) that normalising never reads: records take a resource's type, id, attributes and each
relationship's data (engine/records.py, derive.flat). For a JSON:API spec whose records and included
resources are top-level members, those two members are decoded with a schema (msgspec) that skips
everything else inside a resource, so the skipped text never becomes Python strings; every other member,
and any body the schema does not fit, is read whole exactly as http.parse_body reads it.

Each relationship is read as a Relationship and its data as Identifier structs (records.py and derive.flat
read them as they read the same dicts); everything else comes out as parse_body gives it.

A body whose top level holds only JSON:API's own members (and the spec's record lists) is read in one pass
by a schema of the whole document. Any other member, or a list member the resource schema does not fit,
sends it to two passes: its top-level members split first, then each read on its own.
"""

from __future__ import annotations

import re
from typing import Any, Callable, TypedDict

import msgspec

from .spec import ApiSpec

_MEMBER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a jmespath expression that selects one top-level member


class Identifier(msgspec.Struct, gc=False, omit_defaults=True):
    """A resource identifier (a relationship's data, or an item of it) as the schema reads it: its type and id,
    None where it has none; its meta is never read. Records read it as they read the same dict (records.py).

    Relationships are most of a JSON:API page's objects (an event has three, each with its data). Read as
    structs rather than dicts, parsing events took 5.4-5.7 CPU µs an event instead of 6.0-7.8, and freeing
    them costs less. No cycle can pass through decoded JSON, so the collector need not track them (gc=False).
    """

    type: Any = None
    id: Any = None


class Relationship(msgspec.Struct, gc=False, omit_defaults=True):
    """A resource's relationship as the schema reads it: its data (UNSET when it has none); links and meta are
    never read. Data that is neither an object, a list of objects nor null does not fit: the member is then read
    whole, as dicts."""

    data: Identifier | list[Identifier] | None | msgspec.UnsetType = msgspec.UNSET


def type_and_id(identifier: Identifier | dict[str, Any]) -> tuple[Any, Any]:
    """A resource identifier's (or a resource's) type and id, None where it has none: a struct or the same dict."""
    if identifier.__class__ is Identifier:
        return identifier.type, identifier.id
    return identifier.get("type"), identifier.get("id")


class _Resource(TypedDict, total=False):
    type: Any
    id: Any
    attributes: Any
    relationships: dict[str, Relationship]


_members = msgspec.json.Decoder(dict[str, msgspec.Raw])  # the top-level members, each left as its bytes
_resources = msgspec.json.Decoder(list[_Resource])
_anything = msgspec.json.Decoder()
# JSON:API's top-level members (jsonapi.org/format/#document-top-level).
_TOP_LEVEL = ("data", "included", "links", "meta", "errors", "jsonapi")


def body_parser(api: ApiSpec, parse_body: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """A function reading one response body as `parse_body` does, minus what `api`'s records never use."""
    if api.record_format != "jsonapi":
        return parse_body
    lists = {expression for expression in (api.records, api.included) if expression and _MEMBER.fullmatch(expression)}
    if not lists:
        return parse_body

    document, members = _document(lists)

    def parse(body: bytes) -> Any:
        # No look for integers beyond 64 bits (has_long_integer, which parse_body needs for orjson): msgspec
        # reads them exactly, as json does, and its floats are json's too (tests/test_bodies.py compares
        # numbers of up to 41 digits). Profiled: the look, a pass over the whole body, took 2.3 of the 10.9 CPU
        # µs a record of parsing events.
        try:
            found = document.decode(body)
        except msgspec.ValidationError:  # another member, or one the schema does not fit: two passes
            pass
        except msgspec.MsgspecError:  # not JSON, or what only json reads (NaN): as parse_body does
            return parse_body(body)
        else:
            return {name: value for field, name in members if (value := getattr(found, field)) is not msgspec.UNSET}
        try:
            return {name: _member(name in lists, raw) for name, raw in _members.decode(body).items()}
        except msgspec.MsgspecError:  # not an object: as parse_body does
            return parse_body(body)

    return parse


def _document(lists: set[str]) -> tuple[msgspec.json.Decoder, list[tuple[str, str]]]:
    """A decoder of a whole JSON:API document whose `lists` are lists of resources, refusing any other member
    (msgspec.ValidationError), and its (field, member) pairs. One pass over the body where splitting its
    members first and then reading each read every byte twice: profiled on events, 4.4 -> 3.2 µs a record."""
    names = sorted(set(_TOP_LEVEL) | lists)
    fields = [(f"m{n}", list[_Resource] if name in lists else Any, msgspec.UNSET) for n, name in enumerate(names)]
    members = [(f"m{n}", name) for n, name in enumerate(names)]  # fields named apart from members: any text is a member
    struct = msgspec.defstruct("Document", fields, rename=dict(members), forbid_unknown_fields=True)
    return msgspec.json.Decoder(struct), members


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
