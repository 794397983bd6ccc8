"""Page body -> records: select with jmespath, normalise (JSON:API), resolve includes, filter, add keys."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterator

import jmespath

from .errors import ApiError
from .spec import ApiSpec, StreamSpec


class RecordReader:
    """Turns the pages of one stream into flat-ish records (dicts); holds compiled expressions only."""

    def __init__(self, api: ApiSpec, stream: StreamSpec) -> None:
        self.stream = stream
        self.jsonapi = api.record_format == "jsonapi"
        self.records_path = jmespath.compile(api.records)
        self.included_path = jmespath.compile(api.included) if api.included else None
        self.filter = jmespath.compile(stream.record_filter) if stream.record_filter else None
        self.cursor = jmespath.compile(stream.cursor.field) if stream.cursor else None

    def page_records(self, body: Any, url: str) -> list[Any]:
        """The raw records of one page; an ApiError when the body has no record list."""
        records = self.records_path.search(body) if isinstance(body, (dict, list)) else None
        if not isinstance(records, list):
            raise ApiError(
                f"the response to GET {url} (stream {self.stream.name}) has no record list at {self.records_path.expression!r}",
                stream=self.stream.name,
                url=url,
            )
        return records

    def records(self, body: Any, raw: list[Any], extra: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Normalised records with `extra` columns (parent keys, partitions) set; see keep() for the filter."""
        included = self._included(body) if self.jsonapi and self.stream.include else {}
        for item in raw:
            record = self._normalise(item, included) if self.jsonapi else dict(item)
            record.update(extra)
            yield record

    def keep(self, record: dict[str, Any]) -> bool:
        """Whether the stream's record filter keeps `record` (the cursor moves over every record read)."""
        return self.filter is None or bool(self.filter.search(record))

    def cursor_value(self, record: dict[str, Any]) -> datetime | None:
        """The record's cursor as an aware UTC datetime (None when absent or unparseable)."""
        if self.cursor is None:
            return None
        return parse_datetime(self.cursor.search(record))

    def _included(self, body: Any) -> dict[tuple[str, str], dict[str, Any]]:
        found = self.included_path.search(body) if self.included_path else None
        return {(r.get("type"), r.get("id")): r for r in found or [] if isinstance(r, dict)}

    def _normalise(self, resource: Any, included: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
        # JSON:API: id and attributes at the top; a to-one relationship becomes <rel>_id and a
        # to-many one <rel>_ids; attributes resolved from included[] where the spec asks.
        if not isinstance(resource, dict) or "id" not in resource:
            raise ApiError(f"stream {self.stream.name}: a record without an id: {str(resource)[:120]}", stream=self.stream.name)
        record: dict[str, Any] = {"id": resource["id"]}
        record.update(resource.get("attributes") or {})
        for name, relationship in (resource.get("relationships") or {}).items():
            if not isinstance(relationship, dict) or "data" not in relationship:
                continue
            data = relationship["data"]
            if isinstance(data, list):
                record.setdefault(f"{name}_ids", [d.get("id") for d in data if isinstance(d, dict)])
                continue
            record.setdefault(f"{name}_id", data.get("id") if isinstance(data, dict) else None)
            wanted = self.stream.include.get(name)
            if wanted:
                target = included.get((data.get("type"), data.get("id"))) if isinstance(data, dict) else None
                attributes = (target or {}).get("attributes") or {}
                for attribute, column in wanted.items():
                    record.setdefault(column, attributes.get(attribute))
        return record


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
        parsed = datetime.fromtimestamp(value, tz=timezone.utc)
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)
