"""jmespath expressions as plain Python functions, for the ones evaluated once per record.

jmespath's interpreter walks the parsed tree on every search: a few microseconds per node, per record. The
subset specs use on records (field paths, quoted keys, [index], &&, ||, !, literals, @) is compiled here once
into one Python function per expression that gives the very same result (its source is built from the parsed
tree; names and literals are passed in as objects, never written into it as code); any other expression
(functions, projections, comparisons…) keeps jmespath's own search, so every spec expression still means
exactly what jmespath says.
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
        return _function(parsed.parsed, None)
    except _Unsupported:
        return parsed.search


def compile_search_with(text: str, key: str) -> Callable[[dict[str, Any], Any], Any]:
    """`text` as a function f(record, extra) returning jmespath.search(text, {**record, key: extra}), without building that dict."""
    parsed = jmespath.compile(text)
    try:
        return _function(parsed.parsed, key)
    except _Unsupported:
        return lambda record, extra: parsed.search({**record, key: extra})


def compiles(text: str) -> bool:
    """Whether `text` is in the compiled subset (whose functions never raise)."""
    try:
        _compile(jmespath.compile(text).parsed, None)
        return True
    except _Unsupported:
        return False


def _compile(node: dict[str, Any], top: str | None) -> str:
    """Python source of one function evaluating a parsed expression; _Unsupported outside the subset.

    The whole expression becomes one Python function (one call per record) rather than a closure per node,
    whose calls were most of a derived column's cost: profiled, 3.6 µs a record for the three derived
    columns of events with closures. With `top` set, the function takes (record, extra) and the root
    field `top` reads extra; otherwise it takes (value).
    """
    return _Source(top).function(node)


def _function(node: dict[str, Any], top: str | None) -> Callable[..., Any]:
    source = _Source(top)
    text = source.function(node)
    namespace: dict[str, Any] = {"_is_false": _is_false, "_not": _not, "isinstance": isinstance, "dict": dict, "list": list, "len": len}
    namespace.update(source.constants)
    exec(compile(text, f"<jmespath {node.get('type')}>", "exec"), namespace)  # noqa: S102 - source built from the parsed tree only
    return namespace["search"]


class _Source:
    """Builds the Python expression of a parsed jmespath node; names and literals never enter the text as code."""

    def __init__(self, top: str | None) -> None:
        self.top = top
        self.constants: dict[str, Any] = {}  # _cN -> a literal (or a key), the very object jmespath returns
        self.temporaries = 0

    def function(self, node: dict[str, Any]) -> str:
        body = self.expression(node, "value" if self.top is None else None)
        arguments = "value" if self.top is None else "record, extra"
        return f"def search({arguments}):\n    return {body}\n"

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def temporary(self) -> str:
        self.temporaries += 1
        return f"_t{self.temporaries}"

    def field(self, name: str, value: str | None) -> str:
        """Field `name` of `value` (None: of the root record, or extra when it is the extra key)."""
        if value is None:
            return "extra" if name == self.top else f"record.get({self.constant(name)})"
        t = self.temporary()
        return f"({t}.get({self.constant(name)}) if isinstance({t} := {value}, dict) else None)"

    def expression(self, node: dict[str, Any], value: str | None) -> str:
        """`node` applied to the Python expression `value` (None: the root of a (record, extra) function)."""
        kind, children = node["type"], node.get("children", [])
        if kind == "field":
            return self.field(node["value"], value)
        if kind in ("subexpression", "index_expression"):
            # The first child reads the root; each next one reads what the previous gave (None reads as None).
            current = self.expression(children[0], value)
            for child in children[1:]:
                current = self.expression(child, current)
            return current
        if kind == "index":
            if value is None:
                raise _Unsupported(kind)
            t, position = self.temporary(), int(node["value"])
            return f"({t}[{position}] if isinstance({t} := {value}, list) and -len({t}) <= {position} < len({t}) else None)"
        if kind == "literal":
            return self.constant(node["value"])  # the same object every time, as jmespath returns it
        if kind == "current" and value is not None:
            return value
        if kind in ("and_expression", "or_expression"):
            left, right = self.expression(children[0], value), self.expression(children[1], value)
            t = self.temporary()
            if kind == "and_expression":
                return f"({t} if _is_false({t} := {left}) else {right})"
            return f"({right} if _is_false({t} := {left}) else {t})"
        if kind == "not_expression":
            return f"_not({self.expression(children[0], value)})"
        raise _Unsupported(kind)


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
