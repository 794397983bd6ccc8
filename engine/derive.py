"""Computed columns (spec `derived`): jmespath over the normalised record and the resources it includes."""

from __future__ import annotations

from typing import Any, Sequence

from jmespath.exceptions import JMESPathError

from .bodies import Identifier, Relationship, type_and_id
from .expressions import compile_all_with, compile_search_with

RELATED_KEY = "included"  # derived expressions see included resources under this key


class Derivations:
    """A stream's derived columns, compiled once; `apply` sets them on one record."""

    def __init__(self, columns: dict[str, str]) -> None:
        # Each sees the record as it was before any derived column was set: {**record, included: related}.
        self.columns = [(column, compile_search_with(expression, RELATED_KEY)) for column, expression in columns.items()]
        # When every expression is compiled (none can fail), one function computes them all, with no try per column.
        compiled = compile_all_with(list(columns.values()), RELATED_KEY, list(columns))
        self.all = compiled[0] if compiled else None  # sets every column of the record it is given
        # Whether apply() needs the included resources (records.py builds them only then).
        self.reads_related = compiled[1] if compiled else True

    def apply(self, record: dict[str, Any], related: dict[str, Any]) -> None:
        """Set every derived column of `record`; an expression that fails on this record gives null."""
        if self.all is not None:
            self.all(record, related)
            return
        values = []
        for column, search in self.columns:
            try:
                values.append(search(record, related))
            except JMESPathError:  # e.g. a function given a value of the wrong type in this record
                values.append(None)
        for (column, _), value in zip(self.columns, values):
            record[column] = value


def flat(resource: dict[str, Any] | None) -> dict[str, Any] | None:
    """An included JSON:API resource as derived expressions and include mappings see it: id, attributes, <rel>_id(s)."""
    if not isinstance(resource, dict):
        return None
    attributes = resource.get("attributes")
    out: dict[str, Any] = {"id": resource.get("id"), **(attributes if isinstance(attributes, dict) else {})}
    relationships = resource.get("relationships")
    # A relationship and its identifiers come as structs (bodies.py), or as dicts from a body read whole.
    for name, relationship in relationships.items() if isinstance(relationships, dict) else ():
        if relationship.__class__ is Relationship:
            data = relationship.data
        else:
            data = relationship.get("data") if isinstance(relationship, dict) else None
        if isinstance(data, list):
            out.setdefault(f"{name}_ids", [type_and_id(d)[1] for d in data if d.__class__ is Identifier or isinstance(d, dict)])
        elif data.__class__ is Identifier or isinstance(data, dict):
            out.setdefault(f"{name}_id", type_and_id(data)[1])
    return out


def pick(resource: dict[str, Any] | None, attribute: Sequence[str]) -> Any:
    """An attribute (its dotted path already split into parts) of a flattened resource, or None."""
    value: Any = resource
    for part in attribute:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
