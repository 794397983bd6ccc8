"""Page body -> records: select with jmespath, normalise (JSON:API), resolve includes, filter, add keys."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import repeat
from typing import Any, Iterator

from jmespath.exceptions import JMESPathError
from msgspec import UNSET

from .bodies import Identifier, Relationship, type_and_id
from .derive import Derivations, flat, pick
from .errors import ApiError
from .expressions import compile_search
from .spec import ApiSpec, StreamSpec

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a jmespath identifier that selects one top-level key


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record the API sent that cannot be stored, and why (counted and warned about, never loaded)."""

    reason: str


class RecordReader:
    """Turns the pages of one stream into flat-ish records (dicts); holds compiled expressions only."""

    def __init__(self, api: ApiSpec, stream: StreamSpec) -> None:
        self.stream = stream
        self.jsonapi = api.record_format == "jsonapi"
        # Expressions evaluated per record run as compiled closures (engine/expressions.py), not jmespath's interpreter.
        self.records_expression = api.records
        self.records_path = compile_search(api.records)
        self.included_path = compile_search(api.included) if api.included else None
        self.filter = compile_search(stream.record_filter) if stream.record_filter else None
        self.cursor = compile_search(stream.cursor.field) if stream.cursor else None
        self.derive = Derivations(stream.derived) if stream.derived else None
        # A cursor that is a plain top-level key is read with dict.get: cheaper still.
        self.cursor_key = stream.cursor.field if stream.cursor and _PLAIN_KEY.fullmatch(stream.cursor.field) else None
        self._cursors: dict[str, Any] = {}  # partitions' own cursor expressions, compiled on first use
        # relationship -> [(attribute path, column)]: the include mapping with its dotted attributes split once.
        self._wanted = {name: [(attribute.split("."), column) for attribute, column in mapping.items()] for name, mapping in stream.include.items()}
        self._relationship_columns: dict[str, tuple[str, str]] = {}
        # Included resources are looked up for the include mapping, and for derived columns only when one reads them.
        self.related = bool(self.derive and self.derive.reads_related)

    def page_records(self, body: Any, url: str) -> list[Any]:
        """The raw records of one page; an ApiError when the body has no record list."""
        records = self.records_path(body) if isinstance(body, (dict, list)) else None
        if not isinstance(records, list):
            raise ApiError(
                f"the response to GET {url} (stream {self.stream.name}) has no record list at {self.records_expression!r}",
                stream=self.stream.name,
                url=url,
            )
        return records

    def records(self, body: Any, raw: list[Any], extra: dict[str, Any]) -> list[dict[str, Any] | Rejected]:
        """Normalised records with `extra` columns (parent keys, partitions) set, or Rejected for an unusable item."""
        included = _Included(self._included(body) if self.jsonapi and (self.stream.include or self.related) else {})
        if self.jsonapi and _DICT_ONLY == set(map(type, raw)):  # the usual page: no item to refuse, in one pass
            normalise = self._normalise
            records = [normalise(item, included) for item in raw]
            if extra:
                for record in records:
                    if record.__class__ is dict:
                        record.update(extra)
            return records
        return list(self._each_record(raw, included, extra))

    def _each_record(self, raw: list[Any], included: _Included, extra: dict[str, Any]) -> Iterator[dict[str, Any] | Rejected]:
        for item in raw:
            if not isinstance(item, dict):
                yield Rejected(f"a record that is {_kind(item)}, not an object")
                continue
            record = self._normalise(item, included) if self.jsonapi else dict(item)
            if isinstance(record, Rejected):
                yield record
                continue
            if self.derive and not self.jsonapi:
                self.derive.apply(record, {})
            record.update(extra)
            yield record

    def keep(self, record: dict[str, Any]) -> bool:
        """Whether the stream's record filter keeps `record` (the cursor moves over every record read)."""
        if self.filter is None:
            return True
        try:
            return bool(self.filter(record))
        except JMESPathError:  # e.g. a function given a value of the wrong type: the filter cannot keep it
            return False

    def all_kept(self, records: list[dict[str, Any] | Rejected]) -> bool:
        """Whether every one of `records` is a record (none Rejected) that the stream keeps (no record filter)
        with a primary key of non-blank strings: key_problem None for each, told for the page at once."""
        if self.filter is not None or (records and _DICT_ONLY != set(map(type, records))):
            return False
        for field in self.stream.primary_key:
            values = [record.get(field) for record in records]  # type: ignore[union-attr]
            if values and (_STR_ONLY != set(map(type, values)) or not all(map(str.strip, values))):
                return False
        return True

    def key_problem(self, record: dict[str, Any]) -> str | None:
        """Why `record` has no usable primary key (missing, null, empty, or not a string or number), or None."""
        for field in self.stream.primary_key:
            problem = value_problem(record.get(field))
            if problem:
                return f"primary key {field} is {problem}"
        return None

    def cursor_value(self, record: dict[str, Any], field: str | None = None) -> datetime | None:
        """The record's cursor (or `field`, a partition's own cursor) as an aware UTC datetime; None when absent or unparseable."""
        if field is None and self.cursor_key is not None:
            return parse_datetime(record.get(self.cursor_key))
        if field is None:
            search = self.cursor
        else:
            search = self._cursors.get(field)
            if search is None:
                search = self._cursors[field] = compile_search(field)
        if search is None:
            return None
        try:
            return parse_datetime(search(record))
        except JMESPathError:  # e.g. max() over values of mixed types in this record
            return None

    def newest(self, records: list[dict[str, Any] | Rejected], field: str | None = None) -> datetime | None:
        """The latest cursor_value(record, field) of `records` (Rejected ones skipped), or None when none has one.

        When the cursor is a plain key and its values are all texts of ISO 8601's UTC form (utc_form), the latest
        is the greatest text, read alone: parsing each record's cursor was 2% of a sync's GIL time."""
        if field is None and self.cursor_key is not None:
            key = self.cursor_key
            values = [record.get(key) for record in records if record.__class__ is dict]
            if values and str in (classes := set(map(type, values))) and classes <= _TEXT_OR_NULL:
                texts = [value for value in values if value is not None]
                latest = parse_datetime(max(texts)) if utc_form(texts) else None
                if latest is not None:  # (a greatest text that is no day, such as 2026-02-30: one by one below)
                    return latest
        found = [self.cursor_value(record, field) for record in records if not isinstance(record, Rejected)]
        return max((value for value in found if value is not None), default=None)

    def _included(self, body: Any) -> dict[tuple[str, str], dict[str, Any]]:
        found = self.included_path(body) if self.included_path else None
        if not isinstance(found, list):
            return {}
        resources = {}
        for resource in found:  # read inline: a page of events includes hundreds of profiles
            key = _scalar_ref(resource.get("type"), resource.get("id")) if isinstance(resource, dict) else None
            if key is not None:
                resources[key] = resource
        return resources

    def _normalise(self, resource: dict[str, Any], included: _Included) -> dict[str, Any] | Rejected:
        # JSON:API: id and attributes at the top; a to-one relationship becomes <rel>_id and a
        # to-many one <rel>_ids; attributes resolved from included[] where the spec asks.
        attributes = resource.get("attributes")
        if attributes is not None and not isinstance(attributes, dict):
            return Rejected(f"attributes is {_kind(attributes)}, not an object")
        if attributes and "id" in attributes:
            # The resource's own id identifies it; an attribute of that name is kept beside it.
            record = {"id": resource.get("id"), **{k: v for k, v in attributes.items() if k != "id"}, "attributes_id": attributes["id"]}
        else:
            record = {"id": resource.get("id"), **(attributes or {})}
        relationships = resource.get("relationships")
        # relationship -> included resource(s), for derived columns; only when one reads them
        related: dict[str, Any] | None = {} if self.related else None
        # A relationship and its identifiers come as structs (bodies.py), or as dicts from a body read whole.
        for name, relationship in relationships.items() if isinstance(relationships, dict) else ():
            if relationship.__class__ is Relationship:
                data = relationship.data
                if data is UNSET:
                    continue
            elif isinstance(relationship, dict) and "data" in relationship:
                data = relationship["data"]
            else:
                continue
            wanted = self._wanted.get(name)
            columns = self._relationship_columns.get(name) or self._name_columns(name)
            if isinstance(data, list):
                identifiers = [d for d in data if d.__class__ is Identifier or isinstance(d, dict)]
                record.setdefault(columns[1], [type_and_id(d)[1] for d in identifiers])
                if wanted or related is not None:
                    targets = [included.flat(d) for d in identifiers]
                    found = [t for t in targets if t is not None]
                    if related is not None:
                        related[name] = found
                    # A to-many include maps each attribute to a JSON array, one value per included resource.
                    for parts, column in wanted or ():
                        record.setdefault(column, [pick(t, parts) for t in found])
                continue
            if data.__class__ is Identifier:
                record.setdefault(columns[0], data.id)
            elif isinstance(data, dict):
                record.setdefault(columns[0], data.get("id"))
            else:
                record.setdefault(columns[0], None)
                data = None
            if related is not None:
                target = related[name] = included.flat(data) if data is not None else None
                for parts, column in wanted or ():
                    record.setdefault(column, pick(target, parts))
            elif wanted:
                for parts, column in wanted:
                    record.setdefault(column, included.pick(data, parts) if data is not None else None)
        if self.derive:
            self.derive.apply(record, _NOTHING_RELATED if related is None else related)
        return record

    def _name_columns(self, name: str) -> tuple[str, str]:
        """The columns of relationship `name`, to-one and to-many (<name>_id, <name>_ids), named once per reader."""
        columns = self._relationship_columns[name] = (f"{name}_id", f"{name}_ids")
        return columns


_DICT_ONLY, _STR_ONLY = {dict}, {str}
_NOTHING_RELATED: dict[str, Any] = {}  # what derived columns that never read included resources are given


class _Included:
    """One page's included resources by (type, id), each flattened (derive.flat) on first use and then shared."""

    def __init__(self, resources: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.resources = resources
        self.flattened: dict[Any, dict[str, Any] | None] = {}

    def pick(self, identifier: Identifier | dict[str, Any], parts: list[str]) -> Any:
        """pick(self.flat(identifier), parts), without flattening the resource when the path starts at one of its
        attributes or its id (flattening it, on first use, was most of an event's include lookups)."""
        if identifier.__class__ is Identifier:  # type_and_id, inline: an event's every include mapping comes here
            kind, ident = identifier.type, identifier.id
        else:
            kind, ident = identifier.get("type"), identifier.get("id")
        if kind.__class__ is not str or ident.__class__ is not str:
            return pick(self.flat(identifier), parts)
        resource = self.resources.get((kind, ident))
        if resource is None:
            return None
        attributes, first = resource.get("attributes"), parts[0]
        # flat() puts the id first, then every attribute over it, then <rel>_id(s) where no attribute is named so
        if isinstance(attributes, dict) and first in attributes:
            value = attributes[first]
        elif first == "id":
            value = resource.get("id")
        else:
            return pick(self.flat(identifier), parts)
        return pick(value, parts[1:]) if len(parts) > 1 else value

    def flat(self, identifier: Identifier | dict[str, Any]) -> dict[str, Any] | None:
        """The included resource a resource identifier names, flattened; None when the page does not include it."""
        kind, ident = type_and_id(identifier)
        if kind.__class__ is not str or ident.__class__ is not str:  # rare: not cached (1 and 1.0 are one dict key)
            return flat(self.resources.get(_scalar_ref(kind, ident)))
        key = (kind, ident)
        try:
            return self.flattened[key]
        except KeyError:  # first use; the page may not include it (then None)
            found = self.flattened[key] = flat(self.resources.get(key))
            return found


def value_problem(value: Any) -> str | None:
    """Why `value` cannot identify a record (as a key or in a request path), or None when it can."""
    if value is None:
        return "missing or null"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"{_kind(value)}, not a string or number"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r}, not a finite number"
    if isinstance(value, str) and not value.strip():
        return "an empty string"
    return None


def _scalar_ref(kind: Any, ident: Any) -> tuple[str, str] | None:
    """The (type, id) key a JSON:API resource or resource identifier names, when both are scalars."""
    return (kind, ident) if isinstance(kind, str) and isinstance(ident, (str, int)) else None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def utc_form(texts: list[str]) -> bool:
    """Whether every one of `texts` (at least one) has ISO 8601's UTC form YYYY-MM-DDTHH:MM:SS+00:00 with ASCII
    digits (what an API that writes its timestamps one way usually writes): texts that sort as their instants
    do, each matching the timestamp pattern of rows.py.

    Told at once: the texts joined, as bytes with every digit made 0, are that form's shape line after line, and
    +00:00 is found once a text (the shape has one + a line)."""
    joined = "\n".join(texts)
    try:
        shape = joined.encode("ascii").translate(_DIGIT_TO_ZERO)  # the pattern's \d would match other scripts' digits
    except UnicodeEncodeError:
        return False
    return bool(texts) and shape == b"\n".join(repeat(_UTC_SHAPE, len(texts))) and joined.count("+00:00") == len(texts)


_DIGIT_TO_ZERO = bytes(48 if 48 <= i <= 57 else i for i in range(256))
_UTC_SHAPE = b"0000-00-00T00:00:00+00:00"
_TEXT_OR_NULL = {str, type(None)}


def parse_datetime(value: Any) -> datetime | None:
    """An ISO-8601 string (or epoch seconds) as an aware UTC datetime; None when it is neither."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            parsed = datetime.fromtimestamp(value, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):  # out of range, or NaN
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 or 9999-12-31T23:59:59-01:00: not a UTC instant Python holds
        return None
