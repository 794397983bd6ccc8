"""Spec loading: the Klaviyo spec is valid and every mistake in a spec names file, line and key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.spec import Spec

SPEC = Path(__file__).parent.parent / "specs" / "klaviyo.yaml"
RESOURCES = {
    "campaigns": ("updated_at", ("full_refresh", "incremental")),
    "email_templates": ("updated", ("full_refresh", "incremental")),
    "events": ("datetime", ("full_refresh", "incremental")),
    "flows": ("updated", ("full_refresh", "incremental")),
    "global_exclusions": ("updated", ("full_refresh", "incremental")),
    "lists": ("updated", ("full_refresh", "incremental")),
    "metrics": (None, ("full_refresh",)),
    "segments": ("updated", ("full_refresh", "incremental")),
    "segments_profiles": (None, ("full_refresh",)),
    "profiles": ("updated", ("full_refresh", "incremental")),
}


def test_klaviyo_spec_defines_the_ten_resources_with_their_cursors() -> None:
    spec = Spec.from_yaml(SPEC)
    assert set(spec.streams) == set(RESOURCES)
    for name, (cursor, modes) in RESOURCES.items():
        stream = spec.streams[name]
        assert (stream.cursor.field if stream.cursor else None, stream.sync_modes) == (cursor, modes), name
    assert spec.streams["segments_profiles"].primary_key == ("segment_id", "id")
    assert all(spec.streams[n].primary_key == ("id",) for n in RESOURCES if n != "segments_profiles")


def test_revision_is_declared_once_and_current() -> None:
    text = SPEC.read_text()
    assert [line.strip() for line in text.splitlines() if "revision:" in line] == ['revision: "2026-07-15"']
    assert Spec.from_yaml(SPEC).api.headers["revision"] == "2026-07-15"


def test_global_exclusions_extends_profiles_and_merges_params() -> None:
    spec = Spec.from_yaml(SPEC)
    ge, profiles = spec.streams["global_exclusions"], spec.streams["profiles"]
    assert ge.path == profiles.path == "/api/profiles"
    assert ge.params == {"additional-fields[profile]": "subscriptions"}
    assert ge.record_filter == "subscriptions.email.marketing.suppression"
    assert ge.cursor == profiles.cursor


def test_events_look_back_three_days_by_default() -> None:
    assert Spec.from_yaml(SPEC).streams["events"].cursor.lookback == timedelta(days=3)


def _with(tmp_path: Path, old: str, new: str) -> Path:
    text = SPEC.read_text()
    assert old in text, old
    path = tmp_path / "klaviyo.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


# (text replaced, replacement, marker: the line the error must point at, message after "file:line: ").
INVALID_SPECS = [
    ("      field: updated_at\n", "      field: updated_at\n      when: now\n", "when: now",
     "streams.campaigns.cursor.when: unknown key; known: field, filter_field, granularity, lookback, lower, sort"),
    ("      field: updated_at\n      lower: gte\n", "      field: updated_at\n      lower: ge\n", "lower: ge",
     "streams.campaigns.cursor.lower: 'ge' is not one of gt, gte"),
    ("    rate_limit: M\n    page_size: 100\n", "    rate_limit: XXL\n    page_size: 100\n", "rate_limit: XXL",
     "streams.campaigns.rate_limit: unknown tier 'XXL'; known: L, M, S, XL, XS"),
    ("    extends: profiles\n", "    extends: people\n", "extends: people",
     "streams.global_exclusions.extends: unknown stream 'people'"),
    ("    record_filter: subscriptions.email.marketing.suppression\n", "    record_filter: 'subscriptions.[email'\n",
     "record_filter:", "streams.global_exclusions.record_filter: invalid jmespath 'subscriptions.[email'"),
    ("    sync_modes: [full_refresh]\n", "    sync_modes: [incremental, full_refresh]\n", "sync_modes: [incremental, full_refresh]",
     "streams.metrics.sync_modes: incremental needs a cursor"),
    ("  records: data\n", "  records: [data]\n", "records: [data]", "api.records: expected a string, got a list"),
    ("    page_size: 50\n", "    page_size: 0\n", "page_size: 0",
     "streams.flows.page_size: 0 is not between 1 and 100000"),
    ("    remaining: RateLimit-Remaining\n", "    remaining: 'RateLimit Remaining'\n", "remaining: 'RateLimit Remaining'",
     "api.rate_limit_headers.remaining: 'RateLimit Remaining' is not an HTTP header name"),
    ("    reset: RateLimit-Reset\n", "    reset: RateLimit-Reset\n    used: RateLimit-Used\n", "used: RateLimit-Used",
     "api.rate_limit_headers.used: unknown key; known: limit, remaining, reset"),
]


@pytest.mark.parametrize(("old", "new", "marker", "message"), INVALID_SPECS, ids=[m.split(":")[0] for *_, m in INVALID_SPECS])
def test_invalid_spec_names_file_line_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, marker: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    text = _with(tmp_path, old, new).read_text()
    line = next(i for i, row in enumerate(text.splitlines(), 1) if marker in row)
    with pytest.raises(SpecError) as raised:
        Spec.from_yaml(Path("klaviyo.yaml"))
    assert str(raised.value).startswith(f"klaviyo.yaml:{line}: {message}")


def test_unknown_parent_stream_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _with(tmp_path, "      stream: segments\n", "      stream: segmnts\n")
    with pytest.raises(SpecError, match=r"^klaviyo.yaml:\d+: streams.segments_profiles.parent.stream: unknown stream 'segmnts'; did you mean 'segments'\?$"):
        Spec.from_yaml(Path("klaviyo.yaml"))


def test_plain_records_may_use_any_primary_key(tmp_path: Path) -> None:
    # The id-or-added-column rule is for JSON:API, whose records carry their identity in `id`;
    # a plain API's records are stored as they come, so any field can be the key.
    path = _with(tmp_path, "  record_format: jsonapi\n", "  record_format: plain\n")
    path.write_text(path.read_text().replace("    primary_key: [segment_id, id]\n", "    primary_key: [segment_id, email]\n"))
    assert Spec.from_yaml(path).streams["segments_profiles"].primary_key == ("segment_id", "email")


def test_child_key_may_use_parent_and_partition_columns() -> None:
    spec = Spec.from_yaml(SPEC)
    assert spec.streams["segments_profiles"].primary_key == ("segment_id", "id")
    assert "channel" in {d.column for d in spec.streams["campaigns"].partitions}


def test_parents_nest_one_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = SPEC.read_text() + (
        "\n  segment_profile_tags:\n    path: /api/tags\n    parent: {stream: segments_profiles, fields: {id: profile_id}}\n"
        "    primary_key: [profile_id, id]\n"
    )
    (tmp_path / "klaviyo.yaml").write_text(text)
    line = text.splitlines().index("    parent: {stream: segments_profiles, fields: {id: profile_id}}") + 1
    with pytest.raises(SpecError) as raised:
        Spec.from_yaml(Path("klaviyo.yaml"))
    assert str(raised.value) == (
        f"klaviyo.yaml:{line}: streams.segment_profile_tags.parent.stream: 'segments_profiles' has a parent itself; "
        "parents nest one level only"
    )
