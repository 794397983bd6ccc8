"""Compiled jmespath (engine/expressions.py) gives exactly what jmespath gives, falsy and odd values included."""

from __future__ import annotations

import random
from pathlib import Path

import jmespath
import pytest
from jmespath.exceptions import JMESPathError

from engine import expressions
from engine.expressions import compile_all_with, compile_search, compile_search_with
from engine.spec import Spec

# Values JMESPath and Python disagree on (0 is true in JMESPath), plus nesting for paths to walk into.
SCALARS = [None, True, False, 0, 1, -1, 0.0, 2.5, "", "x", "$flow", [], {}, [0], [None], {"a": None}, {"": 0}]
KEYS = ["a", "b", "$flow", "$message", "campaign-messages", "included", ""]


def _value(rng: random.Random, depth: int) -> object:
    roll = rng.random()
    if depth == 0 or roll < 0.35:
        return rng.choice(SCALARS)
    if roll < 0.55:
        return [_value(rng, depth - 1) for _ in range(rng.randrange(4))]
    return {rng.choice(KEYS): _value(rng, depth - 1) for _ in range(rng.randrange(5))}


def _quoted(key: str) -> str:
    return f'"{key}"' if not key.isidentifier() or key == "" else key


def _expression(rng: random.Random, depth: int) -> str:
    """A random expression of the compiled subset: paths, [index], &&, ||, !, literals, @."""
    roll = rng.random()
    if depth == 0 or roll < 0.3:
        path = ".".join(_quoted(rng.choice(KEYS)) for _ in range(rng.randint(1, 3)))
        return path + (f"[{rng.randint(-2, 2)}]" if rng.random() < 0.2 else "")
    if roll < 0.4:
        return rng.choice(["`null`", "`0`", "`false`", "`\"\"`", "`[]`", "`{}`", "`1`", "'text'", "@"])
    if roll < 0.55:
        return f"!({_expression(rng, depth - 1)})"
    operator = rng.choice(["&&", "||"])
    return f"({_expression(rng, depth - 1)}) {operator} ({_expression(rng, depth - 1)})"


def _outcome(search, *args):  # noqa: ANN001, ANN202 - a search function and its arguments
    try:
        return "value", search(*args)
    except JMESPathError as err:
        return "error", type(err)


def test_compiled_subset_matches_jmespath_over_many_values() -> None:
    rng = random.Random(10)
    for _ in range(600):
        text = _expression(rng, 3)
        compiled, reference = compile_search(text), jmespath.compile(text)
        for _ in range(15):
            value = _value(rng, 4)
            assert _outcome(compiled, value) == _outcome(reference.search, value), (text, value)


def test_compiled_with_extra_key_matches_jmespath_on_the_merged_record() -> None:
    rng = random.Random(11)
    for _ in range(600):
        text = _expression(rng, 3)
        compiled, reference = compile_search_with(text, "included"), jmespath.compile(text)
        for _ in range(15):
            record = {rng.choice(KEYS): _value(rng, 3) for _ in range(rng.randrange(5))}
            extra = _value(rng, 3)
            got = _outcome(compiled, record, extra)
            assert got == _outcome(reference.search, {**record, "included": extra}), (text, record, extra)


def test_expressions_compiled_together_match_jmespath_each_on_the_merged_record() -> None:
    # One function for several expressions reads a path they share once: the values must be each expression's own.
    rng = random.Random(12)
    for _ in range(300):
        texts = [_expression(rng, 3) for _ in range(rng.randint(1, 5))]
        texts += rng.sample(texts, rng.randint(0, len(texts)))  # the same expression twice, too
        fresh = [f"column {n}" for n in range(len(texts))]  # names no expression reads
        compiled = compile_all_with(texts, "included", fresh)
        references = [jmespath.compile(text) for text in texts]
        if compiled is None:  # outside the subset (@ at the root of the merged record): each goes to jmespath alone
            assert not all(map(_in_subset, texts)), texts
            continue
        together, reads_included = compiled
        assert reads_included == any(_reads_root(r.parsed, "included") for r in references), texts
        for _ in range(10):
            record = {rng.choice(KEYS): _value(rng, 3) for _ in range(rng.randrange(5))}
            extra = _value(rng, 3)
            expected = tuple(r.search({**record, "included": extra}) for r in references)
            into = dict(record)
            assert together(into, extra) is None
            values = tuple(into[name] for name in fresh)
            assert values == expected, (texts, record, extra)
            assert [type(v) for v in values] == [type(v) for v in expected]
            # Columns named after keys the expressions may read: every value taken from the record as it was
            # before any is set.
            names = rng.sample(KEYS, len(texts)) if len(texts) <= len(KEYS) else None
            if names is not None and len(set(names)) == len(names):
                setting = compile_all_with(texts, "included", names)
                assert setting is not None
                into = dict(record)
                setting[0](into, extra)
                assert into == {**record, **dict(zip(names, expected))}, (texts, record, names)
                assert list(into) == list({**record, **dict.fromkeys(names)}), "keys keep their places, new ones follow"


def _in_subset(text: str) -> bool:
    try:
        expressions._Source("included").function(jmespath.compile(text).parsed)
        return True
    except expressions._Unsupported:
        return False


def _reads_root(node: dict, key: str) -> bool:
    """Whether a parsed expression reads the root field `key` (jmespath's own tree, walked by hand)."""
    kind, children = node["type"], node.get("children", [])
    if kind == "field":
        return node["value"] == key
    if kind in ("subexpression", "index_expression"):
        return _reads_root(children[0], key)
    return any(_reads_root(child, key) for child in children) if kind in ("and_expression", "or_expression", "not_expression") else False


def test_expressions_compiled_together_say_whether_they_read_the_extra_key() -> None:
    assert compile_all_with(['a.b', '"included"', 'x || included.y'], "included", ["p", "q", "r"])[1] is True
    assert compile_all_with(['a.included', 'a[0].included && `1`', '!b'], "included", ["p", "q", "r"])[1] is False
    assert compile_all_with(['a.b', 'length(a)'], "included", ["p", "q"]) is None  # a function: outside the subset


def test_subset_compiles_to_closures_and_the_rest_keeps_jmespath(monkeypatch: pytest.MonkeyPatch) -> None:
    # The subset never reaches jmespath's interpreter: its search is made to fail, and the closures still answer.
    monkeypatch.setattr(jmespath.parser.ParsedResult, "search", lambda self, value, options=None: pytest.fail("interpreted"))
    flow = 'event_properties."$flow" && event_properties."$message" || `null`'
    assert compile_search(flow)({"event_properties": {"$flow": "F", "$message": "M"}}) == "M"
    assert compile_search_with('!(included.x[0].y)', "included")({}, {"x": [{"y": 0}]}) is False
    monkeypatch.undo()
    # Functions, projections, comparisons and @ on the merged record go to jmespath, with its result and its errors.
    outside = ["max(a[].t)", "a[*].b", "a == `1`", "length(@)", "a[?b].c", "{x: a}"]
    for text in outside:
        for value in [{"a": [{"t": 1, "b": 2}, {"t": 3}]}, {"a": 1}, {"a": "s"}, {}]:
            assert _outcome(compile_search(text), value) == _outcome(jmespath.compile(text).search, value), (text, value)
    assert compile_search_with("length(@)", "included")({"a": 1, "b": 2}, None) == 3
    with pytest.raises(JMESPathError):
        compile_search("max(a)")({"a": [1, "x"]})


def test_every_per_record_expression_of_the_bundled_spec_is_compiled() -> None:
    # What the speed is for: the bundled spec's derived columns, filters and cursors never go through the interpreter.
    spec = Spec.from_yaml(Path(__file__).parent.parent / "specs" / "klaviyo.yaml")
    # One exception, calling max(): global_exclusions' updated_or_suppressed, on the suppressed profiles only (a
    # tenth of profiles, read under the profiles rate budget): about 22 µs a record through the interpreter.
    interpreted = {("global_exclusions", "updated_or_suppressed")}
    derived = [(s.name, column, e) for s in spec.streams.values() for column, e in (s.derived or {}).items()]
    assert {(stream, column) for stream, column, _ in derived} >= interpreted
    texts = [e for stream, column, e in derived if (stream, column) not in interpreted]
    texts += [s.record_filter for s in spec.streams.values() if s.record_filter]
    texts += [s.cursor.field for s in spec.streams.values() if s.cursor]
    assert len(texts) > 5
    for text in texts:
        expressions._compile(jmespath.compile(text).parsed, None)  # raises _Unsupported for anything interpreted
