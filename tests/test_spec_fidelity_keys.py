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


def test_global_exclusions_keep_the_row_of_the_latest_update_or_suppression() -> None:
    # A further suppression leaves `updated` alone (API-NOTES §3.5): the table's MERGE compares a derived column.
    spec = Spec.from_yaml(SPEC)
    exclusions = spec.streams["global_exclusions"]
    assert exclusions.merge_cursor == "updated_or_suppressed" and "updated_or_suppressed" in exclusions.derived
    assert spec.streams["profiles"].merge_cursor == "updated" and spec.streams["metrics"].merge_cursor is None


def test_newest_by_must_be_a_record_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fails(tmp_path, monkeypatch, "    newest_by: updated_or_suppressed\n", "    newest_by: max(updated)\n", "newest_by: max",
           "streams.global_exclusions.newest_by: 'max(updated)' is not a record field")


def test_on_filter_miss_delete_needs_a_record_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fails(tmp_path, monkeypatch, "    primary_key: [id]\n    cursor:\n      field: updated\n      # /api/profiles",
           "    primary_key: [id]\n    on_filter_miss: delete\n    cursor:\n      field: updated\n      # /api/profiles",
           "on_filter_miss: delete", "streams.profiles.on_filter_miss: delete needs a record_filter")


def test_parent_bounded_must_be_a_boolean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fails(tmp_path, monkeypatch, "      bounded: false\n", "      bounded: never\n", "bounded: never",
           "streams.segments_profiles.parent.bounded: expected true/false, got str 'never'")


def test_an_older_revision_than_a_sent_parameter_needs_is_refused_at_the_parameter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Changing only the revision line: campaigns' page[size] exists from 2026-04-15 (API-NOTES §6).
    monkeypatch.chdir(tmp_path)
    text = _with(tmp_path, 'revision: "2026-07-15"', 'revision: "2026-01-15"').read_text()
    lines = text.splitlines()
    header = next(i for i, row in enumerate(lines, 1) if 'revision: "2026-01-15"' in row)
    since = next(i for i, row in enumerate(lines, 1) if 'params_since: {"page[size]": "2026-04-15"}' in row)
    with pytest.raises(SpecError) as raised:
        Spec.from_yaml(Path("klaviyo.yaml"))
    assert str(raised.value) == (
        f"klaviyo.yaml:{since}: streams.campaigns.params_since.page[size]: page[size] needs revision 2026-04-15 or later, "
        f"but api.headers.revision is 2026-01-15 (klaviyo.yaml:{header}); raise the revision or stop sending page[size]"
    )


def test_events_page_of_1000_needs_2026_01_15(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = _with(tmp_path, 'revision: "2026-07-15"', 'revision: "2025-10-15"')
    text = path.read_text()
    for stream in ("campaigns", "email_templates", "lists", "segments"):  # drop page[size] where 2026-04-15 is needed
        text = text.replace('    params_since: {"page[size]": "2026-04-15"}\n', "", 1)
    text = text.replace("    page_size: 100\n    params:\n      # What RudderStack", "    params:\n      # What RudderStack")
    text = text.replace("    page_size: 10\n", "")
    path.write_text(text)
    with pytest.raises(SpecError, match=r"^klaviyo.yaml:\d+: streams.events.params_since.page\[size\]: page\[size\] needs revision 2026-01-15 or later"):
        Spec.from_yaml(Path("klaviyo.yaml"))


def test_params_since_needs_a_revision_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fails(tmp_path, monkeypatch, "  revision_header: revision\n", "", 'params_since: {"page[size]": "2026-04-15"}',
           "streams.campaigns.params_since: needs api.revision_header")


def test_revision_header_must_name_a_dated_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fails(tmp_path, monkeypatch, "  revision_header: revision\n", "  revision_header: accept\n", "revision_header: accept",
           "api.revision_header: 'accept' must name one of api.headers whose value starts with a YYYY-MM-DD date")


def test_klaviyo_global_exclusions_read_suppressions_by_their_own_timestamp() -> None:
    (read,) = Spec.from_yaml(SPEC).streams["global_exclusions"].partitions
    suppressed, changed = read.cursors["suppressed"], read.cursors["changed"]
    assert (suppressed.filter_field, suppressed.lower, suppressed.start) == ("subscriptions.email.marketing.suppression.timestamp", "gt", "epoch")
    assert (changed.field, changed.start) == ("updated", "run")


def test_a_partition_cursor_must_name_one_of_its_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fails(tmp_path, monkeypatch, "          changed:\n            start: run\n", "          edited:\n            start: run\n", "edited:",
           "streams.global_exclusions.partitions[0].cursors.edited: 'edited' is not one of this partition's values")


def test_cursor_start_names_its_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fails(tmp_path, monkeypatch, "            start: run\n", "            start: today\n", "start: today",
           "streams.global_exclusions.partitions[0].cursors.changed.start: 'today' is not one of start_date, epoch, run")


def test_migration_guide_names_every_included_and_derived_column() -> None:
    guide = (SPEC.parent.parent / "docs" / "migrating-from-rudderstack.md").read_text()
    spec = Spec.from_yaml(SPEC)
    columns = {c for s in spec.streams.values() for c in (s.derived or {})}
    columns |= {c for s in spec.streams.values() for mapping in s.include.values() for c in mapping.values()}
    assert columns >= {"flow_id", "flow_message_id", "campaign_id", "profile_email", "from_email_0", "tag_names"}
    assert [c for c in sorted(columns) if f"`{c}`" not in guide] == []


def test_lists_and_segments_take_no_upper_bound_on_their_cursor() -> None:
    # /api/lists and /api/segments take only greater-than on updated (API-NOTES §3.6, §3.8).
    spec = Spec.from_yaml(SPEC)
    unbounded = sorted(name for name, s in spec.streams.items() if s.cursor and s.cursor.upper == "none")
    assert unbounded == ["lists", "segments"]


def test_cursor_upper_is_lt_or_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fails(tmp_path, monkeypatch, "      upper: none\n", "      upper: below\n", "upper: below",
           "streams.lists.cursor.upper: 'below' is not one of lt, none")


def test_a_cursor_the_api_cannot_bound_above_cannot_be_sliced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each time slice ends with a less-than filter.
    _fails(tmp_path, monkeypatch, "      slice: 30d\n", "      upper: none\n      slice: 30d\n", "slice: 30d",
           "streams.events.cursor.slice: needs a less-than filter to end each window, but cursor.upper is none "
           "(the API bounds this cursor from below only)")


def test_a_partition_cursor_of_a_sliced_stream_cannot_drop_the_upper_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # profiles sliced: global_exclusions extends it, so its `changed` read may not go without less-than.
    monkeypatch.chdir(tmp_path)
    profiles = "      granularity: 1s\n    sync_modes: [full_refresh, incremental]\n\n  global_exclusions:"
    changed = "            start: run\n"
    text = SPEC.read_text()
    assert profiles in text and changed in text
    text = text.replace(profiles, profiles.replace("1s\n", "1s\n      slice: 30d\n")).replace(changed, changed + "            upper: none\n")
    Path("klaviyo.yaml").write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row == "            upper: none")
    with pytest.raises(SpecError) as raised:
        Spec.from_yaml(Path("klaviyo.yaml"))
    assert str(raised.value).startswith(f"klaviyo.yaml:{line}: streams.global_exclusions.partitions[0].cursors.changed.upper: "
                                        "none, but the stream's cursor.slice needs a less-than filter to end each window")
