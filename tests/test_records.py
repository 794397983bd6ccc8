"""Page bodies to records: JSON:API normalisation, includes, record filters, recorded payloads parse as they are."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.errors import ApiError
from engine.records import RecordReader, parse_datetime
from engine.spec import Spec
from tests.klx_testing import SHARED, shared_file

SPEC = Spec.from_yaml(Path(__file__).parent.parent / "specs" / "klaviyo.yaml")
RECORDED = SHARED / "klaviyo" / "fixtures" / "recorded"


def read(stream: str, body: dict, extra: dict | None = None) -> list[dict]:
    reader = RecordReader(SPEC.api, SPEC.streams[stream])
    return [r for r in reader.records(body, reader.page_records(body, "/x"), extra or {}) if reader.keep(r)]


def test_recorded_profiles_page_normalises() -> None:
    body = json.loads(shared_file(RECORDED / "read-profiles-1-first-page.json").read_text())
    (record,) = read("profiles", body)
    assert record["id"] == "01HSXWNWF52J5PJG45BW383RMV"
    assert record["email"] == "jennifer@gmail.com"
    assert record["updated"] == "2024-03-26T17:24:42+00:00"
    assert "lists_id" not in record  # links-only relationships carry no data


def test_recorded_campaigns_page_keeps_microsecond_cursor_and_message_ids() -> None:
    body = json.loads(shared_file(RECORDED / "read-campaigns.json").read_text())
    reader = RecordReader(SPEC.api, SPEC.streams["campaigns"])
    (record,) = list(reader.records(body, reader.page_records(body, "/x"), {"channel": "email"}))
    assert record["campaign-messages_ids"] == ["01JCPFHB2F7J0J2R2HC8GNNC3Z"]
    assert record["channel"] == "email"
    assert reader.cursor_value(record) == datetime(2024, 11, 14, 23, 20, 32, 232276, tzinfo=timezone.utc)


def test_event_relationships_and_included_metric_name() -> None:
    body = {
        "data": [{"type": "event", "id": "e1", "attributes": {"datetime": "2024-06-04T14:00:00+00:00", "timestamp": 1717509600},
                  "relationships": {"profile": {"data": {"type": "profile", "id": "p1"}},
                                    "metric": {"data": {"type": "metric", "id": "m1"}},
                                    "attributions": {"data": []}}}],
        "included": [{"type": "metric", "id": "m1", "attributes": {"name": "Placed Order"}}],
        "links": {"next": None},
    }
    (record,) = read("events", body)
    assert (record["profile_id"], record["metric_id"], record["metric_name"]) == ("p1", "m1", "Placed Order")
    assert record["attributions_ids"] == []


def test_global_exclusions_keep_only_suppressed_profiles() -> None:
    def profile(pid: str, suppression: list | None) -> dict:
        marketing = {} if suppression is None else {"suppression": suppression}
        return {"type": "profile", "id": pid, "attributes": {"subscriptions": {"email": {"marketing": marketing}}}}

    body = {"data": [profile("a", [{"reason": "UNSUBSCRIBE", "timestamp": "2024-06-05T08:00:58+00:00"}]),
                     profile("b", []), profile("c", None)]}
    assert [r["id"] for r in read("global_exclusions", body)] == ["a"]


def test_parent_keys_are_added_to_child_records() -> None:
    body = {"data": [{"type": "profile", "id": "p1", "attributes": {"joined_group_at": "2024-04-02T03:10:09+00:00"}}]}
    (record,) = read("segments_profiles", body, {"segment_id": "Ma3Xy7"})
    assert (record["segment_id"], record["id"]) == ("Ma3Xy7", "p1")


def test_a_body_without_records_is_an_api_error() -> None:
    reader = RecordReader(SPEC.api, SPEC.streams["profiles"])
    with pytest.raises(ApiError, match=r"the response to GET /api/profiles \(stream profiles\) has no record list at 'data'"):
        reader.page_records({"errors": []}, "/api/profiles")


@pytest.mark.parametrize(("value", "expected"), [
    (1717509600, datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)),
    (1717509600.25, datetime(2024, 6, 4, 14, 0, 0, 250000, tzinfo=timezone.utc)),
    (0, datetime(1970, 1, 1, tzinfo=timezone.utc)),
    ("2024-06-04T16:00:00+02:00", datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)),
    ("2024-06-04T14:00:00", datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)),
    ("2024-06-04", datetime(2024, 6, 4, tzinfo=timezone.utc)),
])
def test_epoch_seconds_and_iso_strings_parse_to_the_same_utc_instant(value, expected: datetime) -> None:
    parsed = parse_datetime(value)
    assert parsed == expected and parsed.tzinfo is timezone.utc


@pytest.mark.parametrize("value", [True, None, "yesterday", "", [1717509600], {"t": 1}, float("nan")])
def test_what_is_not_a_time_parses_to_none(value) -> None:
    assert parse_datetime(value) is None


def test_an_epoch_seconds_cursor_moves_the_cursor() -> None:
    events = SPEC.streams["events"]
    epoch = dataclasses.replace(events, cursor=dataclasses.replace(events.cursor, field="timestamp"))
    reader = RecordReader(SPEC.api, epoch)
    body = {"data": [{"type": "event", "id": "e1", "attributes": {"timestamp": 1717509600, "datetime": "2024-06-04T14:00:00+00:00"}}]}
    (record,) = reader.records(body, reader.page_records(body, "/x"), {})
    assert reader.cursor_value(record) == datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)



def test_the_cursor_is_read_from_a_top_level_key_a_nested_path_or_a_partitions_own_field() -> None:
    profiles = SPEC.streams["profiles"]
    reader = RecordReader(SPEC.api, profiles)
    suppressed = {"id": "p1", "updated": "2024-06-04T14:00:00+00:00",
                  "subscriptions": {"email": {"marketing": {"suppression": [{"timestamp": 1717513200}]}}}}
    assert reader.cursor_value(suppressed) == datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)
    field = "subscriptions.email.marketing.suppression[0].timestamp"
    assert reader.cursor_value(suppressed, field) == datetime(2024, 6, 4, 15, 0, tzinfo=timezone.utc)
    assert reader.cursor_value({"id": "p2", "updated": "2024-06-04T14:00:00+00:00"}, field) is None
    assert reader.cursor_value({"id": "p3"}) is None
    nested = RecordReader(SPEC.api, dataclasses.replace(profiles, cursor=dataclasses.replace(profiles.cursor, field="meta.seen")))
    assert nested.cursor_value({"id": "p4", "meta": {"seen": 1717509600}, "updated": "2020-01-01"}) == datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)
    assert nested.cursor_value({"id": "p5", "updated": "2020-01-01"}) is None
    plain = RecordReader(SPEC.api, dataclasses.replace(profiles, cursor=None))
    assert plain.cursor_value(suppressed) is None
