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


def compile_all_with(texts: list[str], key: str, into: list[str]) -> tuple[Callable[[dict[str, Any], Any], None], bool] | None:
    """All of `texts` as one function f(record, extra) setting record[into[i]] to what compile_search_with's
    function of texts[i] returns, every value computed before any is set; and whether any of them reads `key`.
    None when one is outside the compiled subset.

    One call per record instead of one per expression, and a path several expressions read (events' three
    derived columns read event_properties."$flow" or ."$message" five times) is read once: every node in the
    subset reads without side effects and never raises, so reading it ahead of the expression changes nothing.
    Setting the values in the function itself costs a third of record.update(zip(names, values)).
    """
    source = _Source(key, shared=True)
    try:
        text = source.functions([jmespath.compile(t).parsed for t in texts], into)
    except _Unsupported:
        return None
    return _define(text, source, "<jmespath derived>"), source.reads_top


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
    return _define(source.function(node), source, f"<jmespath {node.get('type')}>")


def _define(text: str, source: _Source, name: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {"_is_false": _is_false, "_not": _not, "isinstance": isinstance, "dict": dict, "list": list, "len": len}
    namespace.update(source.constants)
    exec(compile(text, name, "exec"), namespace)  # noqa: S102 - source built from the parsed tree only
    return namespace["search"]


class _Source:
    """Builds the Python expression of a parsed jmespath node; names and literals never enter the text as code."""

    def __init__(self, top: str | None, *, shared: bool = False) -> None:
        self.top = top
        self.constants: dict[str, Any] = {}  # _cN -> a literal (or a key), the very object jmespath returns
        self.temporaries = 0
        self.reads_top = False  # whether the expression reads the root field `top` (extra)
        # shared: each read (a field or an index) is a local of the function, assigned once ahead of the
        # expressions and named by its source text, so that a read written twice is evaluated once.
        self.reads: dict[tuple[Any, ...], tuple[str, str]] | None = {} if shared else None
        self.keys: dict[str, str] = {}  # field name -> its constant, so that one read has one text

    def function(self, node: dict[str, Any]) -> str:
        body = self.expression(node, "value" if self.top is None else None)
        arguments = "value" if self.top is None else "record, extra"
        return f"def search({arguments}):\n    return {body}\n"

    def functions(self, nodes: list[dict[str, Any]], into: list[str]) -> str:
        """One function of (record, extra) setting record[name] to each expression's value, its reads assigned
        first and every value computed before any is set (the tuple on the right is evaluated whole first)."""
        bodies = [self.expression(node, None) for node in nodes]
        assert self.reads is not None and len(into) == len(nodes)
        lines = [f"    {local} = {read}\n" for local, read in self.reads.values()]
        values = f"({''.join(f'{b}, ' for b in bodies)})"
        targets = "".join(f"record[{self.constant(name)}], " for name in into)
        return f"def search(record, extra):\n{''.join(lines)}    {targets}= {values}\n"

    def read(self, what: tuple[Any, ...], text: Callable[[], str]) -> str:
        """The source text of a read without side effects (`what` names it: a field or index of a source text),
        or, when reads are shared, the local that holds it."""
        if self.reads is None:
            return text()
        if what not in self.reads:
            self.reads[what] = (f"_r{len(self.reads)}", text())
        return self.reads[what][0]

    def key(self, name: str) -> str:
        if name not in self.keys:
            self.keys[name] = self.constant(name)
        return self.keys[name]

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
            if name == self.top:
                self.reads_top = True
                return "extra"
            return self.read(("field", name, None), lambda: f"record.get({self.key(name)})")

        def read() -> str:
            t = self.temporary()
            return f"({t}.get({self.key(name)}) if isinstance({t} := {value}, dict) else None)"

        return self.read(("field", name, value), read)

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
            position = int(node["value"])

            def read() -> str:
                t = self.temporary()
                return f"({t}[{position}] if isinstance({t} := {value}, list) and -len({t}) <= {position} < len({t}) else None)"

            return self.read(("index", position, value), read)
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
    if value is None:  # most often: a key the record lacks (events' $flow)
        return True
    kind = value.__class__
    if kind is str or kind is list or kind is dict or kind is bool:  # the JSON types: empty, or false
        return not value
    if kind is int or kind is float:
        return False
    return value == "" or value == [] or value == {} or value is None or value is False


def _not(value: Any) -> bool:
    # jmespath's `!`: Python's `not`, except that !0 is false (0 is not special in JMESPath).
    if value is None:  # before the Number check below, which for None asks abc's slow isinstance
        return True
    kind = value.__class__
    if (kind is int or kind is float or (kind is not bool and isinstance(value, Number))) and value == 0:
        return False
    return not value
