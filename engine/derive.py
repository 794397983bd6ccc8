"""Computed columns (spec `derived`): jmespath over the normalised record and the resources it includes."""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

RELATED_KEY = "included"  # derived expressions see included resources under this key


class Derivations:
    """A stream's derived columns, compiled once; `apply` sets them on one record."""

    def __init__(self, columns: dict[str, str]) -> None:
        self.columns = {column: jmespath.compile(expression) for column, expression in columns.items()}

    def apply(self, record: dict[str, Any], related: dict[str, Any]) -> None:
        """Set every derived column of `record`; an expression that fails on this record gives null."""
        context = {**record, RELATED_KEY: related}
        for column, expression in self.columns.items():
            try:
                record[column] = expression.search(context)
            except JMESPathError:  # e.g. a function given a value of the wrong type in this record
                record[column] = None


def flat(resource: dict[str, Any] | None) -> dict[str, Any] | None:
    """An included JSON:API resource as derived expressions and include mappings see it: id, attributes, <rel>_id(s)."""
    if not isinstance(resource, dict):
        return None
    attributes = resource.get("attributes")
    out: dict[str, Any] = {"id": resource.get("id"), **(attributes if isinstance(attributes, dict) else {})}
    relationships = resource.get("relationships")
    for name, relationship in relationships.items() if isinstance(relationships, dict) else ():
        data = relationship.get("data") if isinstance(relationship, dict) else None
        if isinstance(data, list):
            out.setdefault(f"{name}_ids", [d.get("id") for d in data if isinstance(d, dict)])
        elif isinstance(data, dict):
            out.setdefault(f"{name}_id", data.get("id"))
    return out


def pick(resource: dict[str, Any] | None, attribute: str) -> Any:
    """A (dotted) attribute of a flattened resource, or None."""
    value: Any = resource
    for part in attribute.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
