"""Docs stay true: every config key is documented in config.example.yaml, every spec key in specs/README.md."""

from __future__ import annotations

import re

import pytest

from tests.klx_testing import ROOT

EXAMPLE = (ROOT / "config.example.yaml").read_text()
SPEC_README = (ROOT / "specs" / "README.md").read_text()


def keys_read_by(path: str) -> set[str]:
    """Keys a loader asks its Reader for: get("key", …) and child("key", …)."""
    return set(re.findall(r'\.(?:get|child|has)\("([a-z_]+)"', (ROOT / path).read_text()))


def destination_options() -> set[str]:
    """Every option of every destination module (its OPTIONS tuple)."""
    found: set[str] = set()
    for module in (ROOT / "engine" / "destinations").glob("*.py"):
        for allowed in re.findall(r"^OPTIONS = \(([^)]*)\)", module.read_text(), re.M):
            found |= set(re.findall(r'"([a-z_]+)"', allowed))
    return found


def test_every_destination_documents_its_options() -> None:
    assert {"path", "storage_version", "dsn", "password"} <= destination_options()


@pytest.mark.parametrize("key", sorted(keys_read_by("engine/config.py") | destination_options() | {"table_prefix", "type"}))
def test_config_key_is_documented_in_the_example(key: str) -> None:
    assert re.search(rf"^\s*#?\s*{key}:", EXAMPLE, re.M), f"config.example.yaml does not document {key!r}"


@pytest.mark.parametrize("key", sorted(keys_read_by("engine/spec.py")))
def test_spec_key_is_documented_in_specs_readme(key: str) -> None:
    assert f"`{key}" in SPEC_README or f".{key}`" in SPEC_README, f"specs/README.md does not document {key!r}"


def test_readme_commands_are_the_ones_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -e . && klx demo" in readme
    assert "python -m pytest -q" in readme and "python -m pytest -q" in ci
