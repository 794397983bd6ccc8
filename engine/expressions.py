"""jmespath expressions as plain Python closures, for the ones evaluated once per record.

jmespath's interpreter walks the parsed tree on every search: a few microseconds per node, per record. The
subset specs use on records (field paths, quoted keys, [index], &&, ||, !, literals, @) is compiled here once
into closures that give the very same result; any other expression (functions, projections, comparisons…)
keeps jmespath's own search, so every spec expression still means exactly what jmespath says.
"""

from __future__ import annotations

from numbers import Number
from typing import Any, Callable

import jmespath

Search = Callable[[Any], Any]


class _Unsupported(Exception):
    """A node outside the compiled subset: the whole expression goes to jmespath."""


def compile_search(text: str) -> Search:
    """`text` as a function of one value, returning what jmespath.search(text, value) returns (and raising what it raises)."""
    parsed = jmespath.compile(text)
    try:
        return _compile(parsed.parsed, None)
    except _Unsupported:
        return parsed.search


def compile_search_with(text: str, key: str) -> Callable[[dict[str, Any], Any], Any]:
    """`text` as a function f(record, extra) returning jmespath.search(text, {**record, key: extra}), without building that dict."""
    parsed = jmespath.compile(text)

    def top(name: str) -> Callable[[Any], Any]:
        if name == key:
            return lambda pair: pair[1]
        return lambda pair: pair[0].get(name)

    try:
        compiled = _compile(parsed.parsed, top)
    except _Unsupported:
        return lambda record, extra: parsed.search({**record, key: extra})
    return lambda record, extra: compiled((record, extra))


def _compile(node: dict[str, Any], top: Callable[[str], Search] | None) -> Search:
    """The closure of one parsed node. `top` (when set) reads a field of the root value, which is then no plain value."""
    kind, children = node["type"], node.get("children", [])
    if kind == "field":
        name = node["value"]
        if top is not None:
            return top(name)
        return lambda value: value.get(name) if isinstance(value, dict) else None
    if kind == "subexpression" and all(c["type"] == "field" for c in children):
        return _fields([c["value"] for c in children], top)
    if kind in ("subexpression", "index_expression"):
        # The first child reads the root; each next one reads what the previous gave (None reads as None).
        steps = [_compile(children[0], top), *(_compile(c, None) for c in children[1:])]
        if len(steps) == 2:
            first, second = steps
            return lambda value: second(first(value))

        def chain(value: Any) -> Any:
            for step in steps:
                value = step(value)
            return value

        return chain
    if kind == "index":
        position = node["value"]

        def index(value: Any) -> Any:
            if not isinstance(value, list):
                return None
            try:
                return value[position]
            except IndexError:
                return None

        return index
    if kind == "literal":
        literal = node["value"]  # the same object every time, as jmespath returns it
        return lambda value: literal
    if kind == "current" and top is None:
        return lambda value: value
    if kind in ("and_expression", "or_expression"):
        left, right = _compile(children[0], top), _compile(children[1], top)
        if kind == "and_expression":
            return lambda value: matched if _is_false(matched := left(value)) else right(value)
        return lambda value: right(value) if _is_false(matched := left(value)) else matched
    if kind == "not_expression":
        operand = _compile(children[0], top)
        return lambda value: _not(operand(value))
    raise _Unsupported(kind)


def _fields(names: list[str], top: Callable[[str], Search] | None) -> Search:
    """A path of plain fields (a.b."c") as one closure: each step reads a key of an object, anything else gives None."""
    first = top(names[0]) if top is not None else None
    rest = names[1:] if top is not None else names
    if first is not None and len(rest) == 1:  # the common derived column: record.field."key"
        (second,) = rest

        def two(value: Any) -> Any:
            found = first(value)
            return found.get(second) if isinstance(found, dict) else None

        return two

    def walk(value: Any) -> Any:
        if first is not None:
            value = first(value)
        for name in rest:
            if not isinstance(value, dict):
                return None
            value = value.get(name)
        return value

    return walk


def _is_false(value: Any) -> bool:
    # JMESPath's falsehood, not Python's: 0 is true, and so is 0.0.
    kind = value.__class__
    if kind is str or kind is list or kind is dict or kind is bool:  # the JSON types: empty, or false
        return not value
    if kind is int or kind is float:
        return False
    return value == "" or value == [] or value == {} or value is None or value is False


def _not(value: Any) -> bool:
    # jmespath's `!`: Python's `not`, except that !0 is false (0 is not special in JMESPath).
    kind = value.__class__
    if (kind is int or kind is float or (kind is not bool and isinstance(value, Number))) and value == 0:
        return False
    return not value
