"""The generic spec keys issue 8 added: how Klaviyo's spec uses them, and file:line errors for misuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.spec import Spec

SPEC = Path(__file__).parent.parent / "specs" / "klaviyo.yaml"


def _with(tmp_path: Path, old: str, new: str) -> Path:
    text = SPEC.read_text()
    assert old in text, old
    path = tmp_path / "klaviyo.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def _fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, marker: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    text = _with(tmp_path, old, new).read_text()
    line = next(i for i, row in enumerate(text.splitlines(), 1) if marker in row)
    with pytest.raises(SpecError) as raised:
        Spec.from_yaml(Path("klaviyo.yaml"))
    assert str(raised.value).startswith(f"klaviyo.yaml:{line}: {message}")


def test_klaviyo_spec_deletes_lifted_suppressions_and_reads_every_segment() -> None:
    spec = Spec.from_yaml(SPEC)
    assert spec.streams["global_exclusions"].on_filter_miss == "delete"
    assert spec.streams["profiles"].on_filter_miss == "skip"
    assert spec.streams["segments_profiles"].parent.bounded is False


def test_on_filter_miss_names_its_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fails(tmp_path, monkeypatch, "    on_filter_miss: delete\n", "    on_filter_miss: drop\n", "on_filter_miss: drop",
           "streams.global_exclusions.on_filter_miss: 'drop' is not one of skip, delete")


def test_on_filter_miss_delete_needs_a_record_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fails(tmp_path, monkeypatch, "    primary_key: [id]\n    cursor:\n      field: updated\n      # /api/profiles",
           "    primary_key: [id]\n    on_filter_miss: delete\n    cursor:\n      field: updated\n      # /api/profiles",
           "on_filter_miss: delete", "streams.profiles.on_filter_miss: delete needs a record_filter")


def test_parent_bounded_must_be_a_boolean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fails(tmp_path, monkeypatch, "      bounded: false\n", "      bounded: never\n", "bounded: never",
           "streams.segments_profiles.parent.bounded: expected true/false, got str 'never'")
