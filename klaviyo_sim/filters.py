"""Klaviyo's `filter` language: parse, check against an endpoint's allowed pairs, evaluate (API-NOTES §1.5)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from klaviyo_sim.errors import ApiError, invalid_filter

COMPARISONS = ("greater-than", "greater-or-equal", "less-than", "less-or-equal")
_OPERATORS = {"equals", "any", "has", "contains", "contains-any", "contains-all", "ends-with",
              "starts-with", *COMPARISONS}
# Date-only, 'T' or space separator, optional fraction, 'Z' / ±hh:mm / ±hhmm; a '+' sent unencoded
# arrives as a space, so " 00:00" is read as "+00:00" (API-NOTES §1.5).
_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6})\d*)?)?)?"
                       r"\s*(Z|[+\- ]\d{2}:?\d{2})?$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?$")
_FIELD = re.compile(r"[A-Za-z0-9_.$-]+")
_NAME = re.compile(r"[a-z-]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class DateTimeLiteral:
    """An unquoted datetime, as integer epoch microseconds (exact, unlike floats)."""

    epoch: int


@dataclass(frozen=True, slots=True)
class Cond:
    """`op(field,value)`."""

    op: str
    field: str
    value: object


@dataclass(frozen=True, slots=True)
class And:
    """`and(a,b,...)`, or a top-level comma list."""

    items: tuple[Cond | And, ...]


def parse_datetime_literal(text: str) -> int | None:
    """Epoch microseconds for an ISO-8601 literal Klaviyo accepts, else None."""
    m = _DATETIME.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, off = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0),
                      int((frac or "0").ljust(6, "0")), tzinfo=timezone.utc)
    except ValueError:
        return None
    if off and off != "Z":
        sign = -1 if off[0] == "-" else 1
        digits = off[1:].replace(":", "")
        dt -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return (dt - _EPOCH) // timedelta(microseconds=1)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def fail(self, why: str) -> ApiError:
        return invalid_filter(f"{why} at position {self.pos}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def eat(self, char: str) -> None:
        self.skip()
        if not self.text.startswith(char, self.pos):
            raise self.fail(f"expected {char!r}")
        self.pos += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def top(self) -> Cond | And:
        items = [self.expr()]
        while self.peek() == ",":
            self.pos += 1
            items.append(self.expr())
        if self.peek():
            raise self.fail("unexpected text")
        return items[0] if len(items) == 1 else And(tuple(items))

    def expr(self) -> Cond | And:
        self.skip()
        m = _NAME.match(self.text, self.pos)
        if not m:
            raise self.fail("expected an operator")
        name, self.pos = m.group(0), m.end()
        self.eat("(")
        if name == "and":
            items = [self.expr()]
            while self.peek() == ",":
                self.pos += 1
                items.append(self.expr())
            self.eat(")")
            return And(tuple(items))
        if name not in _OPERATORS:
            raise self.fail(f"unknown operator {name!r}")
        self.skip()
        fm = _FIELD.match(self.text, self.pos)
        if not fm:
            raise self.fail("expected a field")
        field_name, self.pos = fm.group(0), fm.end()
        if name == "has":
            self.eat(")")
            return Cond(name, field_name, None)
        self.eat(",")
        value = self.value()
        self.eat(")")
        return Cond(name, field_name, value)

    def value(self) -> object:
        char = self.peek()
        if char in ("'", '"'):
            return self.string(char)
        if char == "[":
            self.pos += 1
            items = []
            if self.peek() != "]":
                items.append(self.value())
                while self.peek() == ",":
                    self.pos += 1
                    items.append(self.value())
            self.eat("]")
            return items
        end = self.pos
        while end < len(self.text) and self.text[end] not in ",)]":
            end += 1
        word, self.pos = self.text[self.pos:end].strip(), end
        if word in ("true", "false"):
            return word == "true"
        if word == "null":
            return None
        if _NUMBER.match(word):
            return float(word) if "." in word else int(word)
        epoch = parse_datetime_literal(word)
        if epoch is None:
            raise self.fail(f"unrecognised literal {word!r}")
        return DateTimeLiteral(epoch)

    def string(self, quote: str) -> str:
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if char == quote:
                return "".join(out)
            out.append(char)
        raise self.fail("unterminated string")


def parse(text: str) -> Cond | And:
    """Parse a filter expression; raise a 400 ApiError if it is malformed."""
    return _Parser(text).top()


def conditions(node: Cond | And) -> list[Cond]:
    """Every condition in the tree (the language only has AND)."""
    if isinstance(node, Cond):
        return [node]
    return [c for item in node.items for c in conditions(item)]


def check(node: Cond | And, allowed: dict[str, tuple[str, ...]], kinds: dict[str, str]) -> None:
    """Reject field/operator pairs the endpoint does not allow and mistyped literals."""
    for cond in conditions(node):
        if cond.op not in allowed.get(cond.field, ()):
            raise invalid_filter(f"'{cond.op}' is not a valid operator for field '{cond.field}'")
        kind = kinds.get(cond.field, "string")
        values = cond.value if isinstance(cond.value, list) else [cond.value]
        if cond.op in ("any", "contains-any", "contains-all") and not isinstance(cond.value, list):
            raise invalid_filter(f"'{cond.op}' needs a list value")
        for value in values if cond.op != "has" else []:
            # Quoted datetimes are refused by Klaviyo (API-NOTES §1.5).
            ok = {"datetime": isinstance(value, DateTimeLiteral),
                  "integer": isinstance(value, int) and not isinstance(value, bool),
                  "boolean": isinstance(value, bool),
                  "string": isinstance(value, str)}.get(kind, True)
            if not ok:
                raise invalid_filter(f"invalid value for field '{cond.field}'")


def _plain(value: object) -> object:
    if isinstance(value, DateTimeLiteral):
        return value.epoch
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _test(op: str, have: object, want: object) -> bool:
    if op == "has":
        return have is not None
    if isinstance(have, list):
        if op in ("contains", "contains-any", "contains-all"):
            wants = want if isinstance(want, list) else [want]
            hits = [w in have for w in wants]
            return all(hits) if op == "contains-all" else any(hits)
        return any(_test(op, item, want) for item in have)
    if have is None:
        return False
    if op == "equals":
        return have in want if isinstance(want, list) else have == want
    if op == "any":
        return have in want
    if op == "contains":
        return isinstance(have, str) and str(want) in have
    if op == "starts-with":
        return isinstance(have, str) and have.startswith(str(want))
    if op == "ends-with":
        return isinstance(have, str) and have.endswith(str(want))
    try:
        if op == "greater-than":
            return have > want
        if op == "greater-or-equal":
            return have >= want
        if op == "less-than":
            return have < want
        if op == "less-or-equal":
            return have <= want
    except TypeError:
        return False
    return False


Getter = Callable[[str], object]


def compile_predicate(node: Cond | And | None) -> Callable[[Getter], bool]:
    """A function of a field getter that says whether a record matches."""
    if node is None:
        return lambda get: True
    conds = [(c.op, c.field, _plain(c.value)) for c in conditions(node)]
    return lambda get: all(_test(op, get(field), want) for op, field, want in conds)


def bounds(node: Cond | And | None, field: str) -> tuple[float | None, float | None]:
    """Inclusive (low, high) implied by comparisons on `field`, to narrow a sorted scan."""
    low = high = None
    for cond in conditions(node) if node is not None else []:
        if cond.field != field or cond.op not in COMPARISONS:
            continue
        value = _plain(cond.value)
        if not isinstance(value, (int, float)):
            continue
        if cond.op.startswith("greater"):
            low = value if low is None else max(low, value)
        else:
            high = value if high is None else min(high, value)
    return low, high
