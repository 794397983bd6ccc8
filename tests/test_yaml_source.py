"""YAML with file:line per key: libyaml's parser where PyYAML has it, the same data, marks and error words."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from engine import yaml_source
from engine.errors import ConfigError
from engine.yaml_source import Located, loads_yaml
from tests.klx_testing import ROOT

needs_libyaml = pytest.mark.skipif(yaml_source._FastLoader is None, reason="PyYAML built without libyaml")


def python_only(text: str, name: str) -> Any:
    loader = yaml_source._Loader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def locations(value: Any, path: str = "") -> list[tuple[str, str, dict[str, str]]]:
    """Every mapping's own file:line and its keys' file:lines, depth first."""
    if isinstance(value, Located):
        found = [(path, value.where, value.key_where)]
        for key, item in value.items():
            found += locations(item, f"{path}/{key}")
        return found
    if isinstance(value, list):
        return [entry for i, item in enumerate(value) for entry in locations(item, f"{path}[{i}]")]
    return []


@needs_libyaml
def test_the_shipped_spec_reads_the_same_with_libyaml_marks_included() -> None:
    text = (ROOT / "specs" / "klaviyo.yaml").read_text()
    fast, slow = loads_yaml(text, "klaviyo.yaml"), python_only(text, "klaviyo.yaml")
    assert issubclass(yaml_source._FastLoader, yaml.CSafeLoader)
    assert fast == slow
    assert locations(fast) == locations(slow) and len(locations(fast)) > 50


@needs_libyaml
def test_text_libyaml_refuses_is_reported_in_the_python_parsers_words(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = yaml_source._FastLoader.get_single_data

    def watched(loader: Any) -> Any:
        seen.append("libyaml")
        return original(loader)

    monkeypatch.setattr(yaml_source._FastLoader, "get_single_data", watched)
    with pytest.raises(ConfigError) as caught:
        loads_yaml("source:\n  api_key: x\n   start_date: 2024-01-01\n", "config.yaml", ConfigError)
    assert seen == ["libyaml"]
    assert (caught.value.where, caught.value.message) == (
        "config.yaml:3", "invalid YAML: unexpected ':' on this line (wrong indentation, or a value containing ': ' that needs quotes)")


@needs_libyaml
def test_a_duplicate_key_is_named_at_its_line_by_either_parser() -> None:
    with pytest.raises(ConfigError) as caught:
        loads_yaml("a: 1\nb: 2\na: 3\n", "config.yaml", ConfigError)
    assert (caught.value.where, caught.value.message) == ("config.yaml:3", "duplicate key 'a'")
