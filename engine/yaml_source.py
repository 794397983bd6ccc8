"""YAML loading that keeps each mapping key's file:line, so errors can point at it."""

from __future__ import annotations


import difflib
import reprlib
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import KlxError


class Located(dict):
    """A mapping that remembers where it and each of its keys stand in the source file."""

    where: str
    key_where: dict[str, str]

    def at(self, key: str) -> str:
        """file:line of `key`, or of the mapping itself when the key is absent."""
        return self.key_where.get(key, self.where)




class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings are Located dicts."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    result = Located()
    result.where = f"{loader.name}:{node.start_mark.line + 1}"
    result.key_where = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)):
            raise KlxError("mapping keys must be plain scalars", where=f"{loader.name}:{key_node.start_mark.line + 1}")
        key = str(key)
        if key in result:
            raise KlxError(f"duplicate key {key!r}", where=f"{loader.name}:{key_node.start_mark.line + 1}")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_where[key] = f"{loader.name}:{key_node.start_mark.line + 1}"
    return result


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> Any:
    # PyYAML raises a bare ValueError for 2024-13-01; keep the text so the reader of that key can say why.
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> Any:
    # YAML 1.1 reads 14:30 as the base-60 number 870 (YAML 1.2 dropped that): `start_time: 14:30` unquoted then
    # came out as "expected a string, got int 870". Such a value is kept as the text it was written as.
    if ":" in str(node.value):
        return loader.construct_scalar(node)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> Any:
    if ":" in str(node.value):  # base 60 too: 14:30.5
        return loader.construct_scalar(node)
    return yaml.SafeLoader.construct_yaml_float(loader, node)


# libyaml's parser (when PyYAML was built with it) reads a spec about seven times faster, with the same
# marks; its error messages differ, so a text it refuses is read again by the Python parser (see loads_yaml).
_FastLoader = type("_FastLoader", (yaml.CSafeLoader,), {}) if hasattr(yaml, "CSafeLoader") else None

for _loader in (_Loader, _FastLoader):
    if _loader is not None:
        _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
        _loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
        _loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
        _loader.add_constructor("tag:yaml.org,2002:float", _construct_float)

# PyYAML's words for the usual hand-editing mistakes, in plain words.
_PLAIN_PROBLEMS = (
    ("expected <block end>", "bad indentation: this line does not line up with the keys above it"),
    ("found character '\\t'", "a tab character; YAML indents with spaces only"),
    ("mapping values are not allowed here", "unexpected ':' on this line (wrong indentation, or a value containing ': ' that needs quotes)"),
    ("could not find expected ':'", "expected 'key: value' (is a ':' missing, or is this line indented wrongly?)"),
    ("did not find expected key", "bad indentation or a stray line: expected another 'key: value' here"),
    ("did not find expected '-' indicator", "bad indentation: this line does not line up with the list items above it"),
)


def load_yaml(path: Path, error: type[KlxError] = KlxError) -> Any:
    """Parse a YAML file; mappings come back as Located dicts carrying file:line."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise error(f"cannot read {path}: {err.strerror}", where=str(path)) from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise error(f"not UTF-8 text (byte 0x{data[err.start]:02x}); save the file as UTF-8", where=f"{path}:{line}") from err
    return loads_yaml(text, str(path), error)


def loads_yaml(text: str, name: str, error: type[KlxError] = KlxError) -> Any:
    """Parse YAML text named `name` (used in file:line)."""
    if _FastLoader is not None:
        fast = _FastLoader(text)
        try:
            fast.name = name
            return fast.get_single_data()
        except Exception:  # noqa: BLE001 - whatever it was, the Python parser below says it in klx's words
            pass
        finally:
            fast.dispose()
    loader = None
    try:
        loader = _Loader(text)
        loader.name = name
        return loader.get_single_data()
    except KlxError as err:
        raise error(err.message, where=err.where) from err
    except yaml.MarkedYAMLError as err:
        problem = str(err.problem)
        # A key without ':' is reported where the scan gave up; the line that lacks it is the context.
        missing_colon = problem.startswith("could not find expected ':'") and err.context_mark
        mark = err.context_mark if missing_colon else (err.problem_mark or err.context_mark)
        line = f"{name}:{mark.line + 1}" if mark else name
        plain = next((words for start, words in _PLAIN_PROBLEMS if problem.startswith(start)), None)
        raise error(f"invalid YAML: {plain or problem}", where=line) from err
    except yaml.reader.ReaderError as err:  # a control character: the reader reports a character offset
        line = text.count("\n", 0, err.position) + 1
        raise error(f"invalid YAML: control character #x{err.character:04x} is not allowed", where=f"{name}:{line}") from err
    except RecursionError as err:
        raise error("invalid YAML: nested too deeply", where=name) from err
    finally:
        if loader is not None:
            loader.dispose()


class Reader:
    """Reads one YAML mapping key by key; unknown keys are errors naming their line."""

    def __init__(self, mapping: Any, context: str, error: type[KlxError], where: str) -> None:
        if not isinstance(mapping, dict):
            if not context:
                raise error(f"expected a mapping of 'key: value' lines, got {_kind(mapping)}", where=where)
            raise error(f"{context}: expected a mapping, got {_kind(mapping)}", where=where)
        self.mapping = mapping
        self.context = context
        self.error = error
        self.where = getattr(mapping, "where", where)
        self._seen: set[str] = set()

    def at(self, key: str) -> str:
        """file:line of `key` (or of the mapping when absent)."""
        at = getattr(self.mapping, "at", None)
        return at(key) if at else self.where

    def name(self, key: str) -> str:
        """The dotted name of `key` for messages."""
        return f"{self.context}.{key}" if self.context else key

    def fail(self, key: str, message: str) -> KlxError:
        """An error about `key`, ready to raise."""
        return self.error(f"{self.name(key)}: {message}", where=self.at(key))

    def has(self, key: str) -> bool:
        """Whether `key` is present."""
        return key in self.mapping

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., *, required: bool = False, secret: bool = False) -> Any:
        """The value of `key`, checked against `kind`; `default` when absent (absent and required: error).

        With `secret`, a value of the wrong type is named by its type only: it may be a key typed in place.
        """
        self._seen.add(key)
        if key not in self.mapping:
            if required or default is ...:
                # A misspelt key is the likelier mistake: name it rather than the key it stands for.
                typo = difflib.get_close_matches(key, [str(k) for k in self.mapping if k not in self._seen], n=1, cutoff=0.6)
                if typo:
                    raise self.fail(typo[0], f"unknown key; did you mean {key!r}?")
                raise self.error(f"{self.name(key)}: required", where=self.where)
            return default
        value = self.mapping[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        wrong = not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool) and (int in kinds or float in kinds))
        if wrong:
            raise self.fail(key, f"expected {_names(kinds)}, got {_kind(value, shown=not secret)}")
        return value

    def child(self, key: str, default: Any = ...) -> "Reader":
        """A Reader over the mapping at `key`."""
        value = self.get(key, dict, default)
        return Reader(value if value is not None else {}, self.name(key), self.error, self.at(key))

    def done(self) -> None:
        """Raise on the first key nobody asked for."""
        for key in self.mapping:
            if key not in self._seen:
                raise self.fail(key, f"unknown key; {did_you_mean(key, self._seen)}")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """'did you mean 'x'?' for the closest of `known`, else the list of known names."""
    choices = sorted(str(k) for k in known)
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"known: {', '.join(choices) or 'none'}"


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 2, 80, 80


def show(value: Any) -> str:
    """repr() for messages, bounded: a value built from YAML aliases can be enormous."""
    return _SHORT.repr(value)


def _kind(value: Any, *, shown: bool = True) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {show(value)}" if shown else type(value).__name__


def _names(kinds: tuple[type, ...]) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number", bool: "true/false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
