"""Page bodies to records: JSON:API normalisation, includes, record filters, recorded payloads parse as they are."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine import records as records_module
from engine.errors import ApiError
from engine.records import RecordReader, parse_datetime, value_problem
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



CURSOR_TEXTS = [
    "2024-06-04T14:00:00+00:00", "2024-06-04T13:59:59+00:00", "2026-01-01T00:00:00+00:00", "0001-01-01T00:00:00+00:00",
    "2026-02-30T00:00:00+00:00", "2027-01-01T00:00:00+05:00", "2026-06-01T00:00:00Z", "2026-06-01 00:00:00+00:00",
    "2024-06-04T14:00:00.5+00:00", "２０２６-06-01T00:00:00+00:00", "not a time", "",
    # sorted as texts, these come after 2026-01-01T01:00:00+00:00; as instants, before it
    "2026-01-01T05:00:00+05:00", "2026-01-01T00:59:59.9+00:00", "2026-01-01 01:00:01+00:00", "2026-01-01T01:00:00.5-00:00",
]


@pytest.mark.parametrize("seed", range(25))
def test_a_page_s_newest_cursor_is_the_latest_of_its_records_cursors(seed: int) -> None:
    """RecordReader.newest (the greatest text, when a page's cursor texts all have Klaviyo's form) against
    cursor_value on each record, over pages mixing that form, other spellings, numbers, nulls and rejected items."""
    rng = random.Random(seed)
    reader = RecordReader(SPEC.api, SPEC.streams["profiles"])
    for _ in range(40):
        page: list = []
        for n in range(rng.randint(0, 8)):
            roll = rng.random()
            if roll < 0.6:
                updated = rng.choice([*CURSOR_TEXTS[:3], "2026-01-01T01:00:00+00:00"])
            else:
                updated = rng.choice([*CURSOR_TEXTS, None, 1717509600, 2.5, True])
            page.append({"id": str(n), "updated": updated} if rng.random() < 0.9 else {"id": str(n)})
        if rng.random() < 0.2:
            page.insert(rng.randint(0, len(page)), records_module.Rejected("odd"))
        expected = max((v for r in page if isinstance(r, dict) and (v := reader.cursor_value(r)) is not None), default=None)
        assert reader.newest(page) == expected, page
        field = "meta.seen"  # a partition's own cursor field: record by record
        assert reader.newest([{"id": "a", "meta": {"seen": 1717509600}}, {"id": "b"}], field) == datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)


def test_a_page_of_klaviyo_form_cursors_parses_only_its_greatest(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = RecordReader(SPEC.api, SPEC.streams["profiles"])
    parsed = []
    monkeypatch.setattr(records_module, "parse_datetime", lambda value: parsed.append(value) or parse_datetime(value))
    page = [{"id": str(n), "updated": f"2024-06-{n + 1:02d}T14:00:00+00:00"} for n in range(20)]
    assert reader.newest(page) == datetime(2024, 6, 20, 14, 0, tzinfo=timezone.utc) and parsed == ["2024-06-20T14:00:00+00:00"]


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


# --- What a page may hold that is not a clean record, includes, derived columns, keys and filters ---

def reader_for(stream: str, api=None, **changes) -> RecordReader:
    return RecordReader(api or SPEC.api, dataclasses.replace(SPEC.streams[stream], **changes))


def normalised(reader: RecordReader, data: list, included: list | None = None, extra: dict | None = None) -> list:
    body = {"data": data, "included": included or []}
    return list(reader.records(body, reader.page_records(body, "/x"), extra or {}))


def test_an_item_that_is_not_an_object_is_rejected_with_its_kind_and_the_page_goes_on() -> None:
    out = normalised(reader_for("profiles"), ["p1", 7, 2.5, True, None, ["p2"], {"type": "profile", "id": "p3"}])
    assert [r.reason for r in out[:-1]] == [
        "a record that is a string, not an object", "a record that is a number, not an object",
        "a record that is a number, not an object", "a record that is a boolean, not an object",
        "a record that is null, not an object", "a record that is a list, not an object",
    ]
    assert out[-1] == {"id": "p3"}


def test_attributes_that_are_not_an_object_reject_the_item_and_the_page_goes_on() -> None:
    out = normalised(reader_for("profiles"), [
        {"type": "profile", "id": "a", "attributes": "flat"}, {"type": "profile", "id": "b", "attributes": ["x"]},
        {"type": "profile", "id": "c", "attributes": None}, {"type": "profile", "id": "d", "attributes": {}},
    ])
    assert [getattr(r, "reason", r) for r in out] == [
        "attributes is a string, not an object", "attributes is a list, not an object", {"id": "c"}, {"id": "d"}]


def test_an_attribute_named_id_is_kept_beside_the_resource_id() -> None:
    (record,) = normalised(reader_for("profiles"), [
        {"type": "profile", "id": "p1", "attributes": {"id": "legacy-7", "email": "a@example.com"}}])
    assert record == {"id": "p1", "email": "a@example.com", "attributes_id": "legacy-7"}


def test_every_relationship_with_data_becomes_an_id_column_whatever_comes_before_it() -> None:
    (record,) = normalised(reader_for("profiles"), [{"type": "profile", "id": "p1", "relationships": {
        "lists": {"links": {"related": "/api/profiles/p1/lists"}},  # links only: no column
        "odd": "not an object",
        "tags": {"data": [{"type": "tag", "id": "t1"}, "junk", {"type": "tag", "id": "t2"}]},
        "organization": {"data": None},
        "account": {"data": {"type": "account", "id": "a1"}},
    }}])
    assert record == {"id": "p1", "tags_ids": ["t1", "t2"], "organization_id": None, "account_id": "a1"}


TAGS = [{"type": "tag", "id": "t1", "attributes": {"name": "VIP"}}, {"type": "tag", "id": "t2", "attributes": {"name": "Q3"}}]


def test_a_to_many_include_maps_each_attribute_to_one_value_per_included_resource() -> None:
    # segments include tags without any derived column; t9 is not in included[] and is left out.
    (record,) = normalised(reader_for("segments"), [{"type": "segment", "id": "s1", "relationships": {
        "tags": {"data": [{"type": "tag", "id": "t2"}, {"type": "tag", "id": "t9"}, {"type": "tag", "id": "t1"}]}}}], TAGS)
    assert (record["tags_ids"], record["tag_names"]) == (["t2", "t9", "t1"], ["Q3", "VIP"])


def test_a_to_one_include_maps_attributes_and_is_null_without_its_resource() -> None:
    reader = reader_for("events", derived=None)
    included = [{"type": "metric", "id": "m1", "attributes": {"name": "Placed Order"}},
                {"type": "profile", "id": "p1", "attributes": {"email": "a@example.com"}}]
    found, unlinked, missing = normalised(reader, [
        {"type": "event", "id": "e1", "relationships": {"metric": {"data": {"type": "metric", "id": "m1"}},
                                                        "profile": {"data": {"type": "profile", "id": "p1"}}}},
        {"type": "event", "id": "e2", "relationships": {"metric": {"data": None}, "profile": {"data": None}}},
        {"type": "event", "id": "e3", "relationships": {"metric": {"data": {"type": "metric", "id": "m2"}}}},
    ], included)
    assert (found["metric_name"], found["profile_email"]) == ("Placed Order", "a@example.com")
    assert (unlinked["metric_id"], unlinked["metric_name"], unlinked["profile_email"]) == (None, None, None)
    assert (missing["metric_id"], missing["metric_name"]) == ("m2", None)


def test_an_include_maps_dotted_attributes_and_the_included_resources_own_id_and_relationships() -> None:
    mapping = {"email": "profile_email", "location.city": "profile_city", "location.zip.code": "profile_zip",
               "id": "profile_ref", "lists_ids": "profile_lists", "organization_id": "profile_org"}
    reader = reader_for("events", derived=None, include={"profile": mapping})
    profile = {"type": "profile", "id": "p1", "attributes": {"email": "a@example.com", "location": {"city": "Boston", "zip": "02110"}},
               "relationships": {"lists": {"data": [{"type": "list", "id": "L1"}, "junk", {"type": "list", "id": "L2"}]},
                                 "organization": {"data": {"type": "organization", "id": "o1"}},
                                 "odd": "not an object", "links_only": {"links": {}}}}
    (record,) = normalised(reader, [{"type": "event", "id": "e1", "relationships": {
        "profile": {"data": {"type": "profile", "id": "p1"}}}}], [profile])
    assert {column: record[column] for column in mapping.values()} == {
        "profile_email": "a@example.com", "profile_city": "Boston", "profile_zip": None,
        "profile_ref": "p1", "profile_lists": ["L1", "L2"], "profile_org": "o1"}


def test_an_include_mapping_reads_what_the_flattened_included_resource_holds() -> None:
    # Included.pick reads an attribute or the id straight from the resource; it must give what flattening gives.
    from engine.derive import pick

    rng = random.Random(5)
    names = ["id", "email", "lists_ids", "org_id", "location", "city", "x"]
    values = [None, "", "v", 0, 1.5, True, [], ["a"], {"city": "Boston"}, {"city": {"x": 1}}, {"id": 7}]
    for _ in range(1500):
        attributes = rng.choice([None, "junk", {name: rng.choice(values) for name in rng.sample(names, rng.randrange(5))}])
        resource = {"type": "profile", "id": rng.choice(["p1", 1]), "attributes": attributes, "relationships": {
            "lists": {"data": [{"type": "list", "id": "L1"}]}, "org": {"data": {"type": "org", "id": "o1"}}}}
        included = records_module._Included({("profile", resource["id"]): resource})
        identifier = rng.choice([{"type": "profile", "id": resource["id"]}, {"type": "profile", "id": "p2"}, {"type": "profile"}])
        parts = rng.sample(names, rng.randint(1, 3))
        got, expected = included.pick(identifier, parts), pick(included.flat(identifier), parts)
        assert (got, type(got)) == (expected, type(expected)), (resource, identifier, parts)


def test_an_include_mapping_of_attributes_and_ids_flattens_no_included_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = {"type": "profile", "id": "p1", "attributes": {"email": "a@b.c", "location": {"city": "Boston"}, "lists_ids": "own"}}
    included = records_module._Included({("profile", "p1"): resource})
    monkeypatch.setattr(records_module, "flat", lambda resource: pytest.fail("flattened"))
    identifier = {"type": "profile", "id": "p1"}
    assert [included.pick(identifier, parts) for parts in (["email"], ["id"], ["location", "city"], ["lists_ids"], ["email", "x"])] == [
        "a@b.c", "p1", "Boston", "own", None]
    assert included.pick({"type": "profile", "id": "p2"}, ["email"]) is None
    # An attribute named id is what flattening keeps under "id" (it is written over the resource's own id).
    included = records_module._Included({("profile", "p1"): {**resource, "attributes": {"id": "attribute id"}}})
    assert included.pick(identifier, ["id"]) == "attribute id"


def test_an_included_resource_with_unusable_attributes_still_resolves_its_id() -> None:
    reader = reader_for("events", derived=None, include={"profile": {"id": "profile_ref", "email": "profile_email"}})
    (record,) = normalised(reader, [{"type": "event", "id": "e1", "relationships": {
        "profile": {"data": {"type": "profile", "id": "p1"}}}}], [{"type": "profile", "id": "p1", "attributes": ["x"]}])
    assert (record["profile_ref"], record["profile_email"]) == ("p1", None)


def test_included_items_without_a_scalar_type_and_id_are_ignored() -> None:
    included = ["junk", {"type": "tag", "id": ["t1"]}, {"id": "t1", "attributes": {"name": "untyped"}},
                {"type": "tag", "id": "t2", "attributes": {"name": "Q3"}}]
    (record,) = normalised(reader_for("segments"), [{"type": "segment", "id": "s1", "relationships": {
        "tags": {"data": [{"id": "t1"}, {"type": "tag", "id": "t2"}]}}}], included)
    assert record["tag_names"] == ["Q3"]


def test_a_jsonapi_spec_without_an_included_path_resolves_no_include() -> None:
    reader = reader_for("segments", api=dataclasses.replace(SPEC.api, included=None))
    (record,) = normalised(reader, [{"type": "segment", "id": "s1", "relationships": {
        "tags": {"data": [{"type": "tag", "id": "t1"}]}}}], TAGS)
    assert (record["tags_ids"], record["tag_names"]) == (["t1"], [])


def test_derived_columns_read_the_record_and_the_resources_it_includes() -> None:
    campaign = {"type": "campaign", "id": "c1", "attributes": {"name": "Sale"}, "relationships": {
        "campaign-messages": {"data": [{"type": "campaign-message", "id": "cm1"}]}, "tags": {"data": []}}}
    message = {"type": "campaign-message", "id": "cm1",
               "attributes": {"definition": {"content": {"from_email": "shop@example.com", "from_label": "Shop"}}}}
    (record,) = normalised(reader_for("campaigns"), [campaign], [message])
    assert (record["from_email_0"], record["from_label_0"], record["reply_to_email_0"]) == ("shop@example.com", "Shop", None)
    assert record["campaign-messages_ids"] == ["cm1"]


def test_derived_event_columns_tell_a_flow_message_from_a_campaign_message() -> None:
    def event(eid: str, properties: dict) -> dict:
        return {"type": "event", "id": eid, "attributes": {"event_properties": properties}}

    flow, campaign = normalised(reader_for("events"), [event("e1", {"$flow": "F1", "$message": "M1"}), event("e2", {"$message": "M2"})])
    assert (flow["flow_id"], flow["flow_message_id"], flow["campaign_id"]) == ("F1", "M1", None)
    assert (campaign["flow_id"], campaign["flow_message_id"], campaign["campaign_id"]) == (None, None, "M2")


def test_included_resources_are_not_looked_up_for_derived_columns_that_never_read_them(monkeypatch: pytest.MonkeyPatch) -> None:
    event = {"type": "event", "id": "e1", "attributes": {"event_properties": {"$flow": "F1", "$message": "M1"}},
             "relationships": {"metric": {"data": {"type": "metric", "id": "m1"}}, "attributions": {"data": [{"type": "a", "id": "1"}]}}}
    metric = {"type": "metric", "id": "m1", "attributes": {"name": "Opened"}}
    monkeypatch.setattr(records_module, "flat", lambda resource: pytest.fail("an included resource was looked up"))
    (record,) = normalised(reader_for("events", include={}), [event], [metric])
    assert (record["flow_id"], record["flow_message_id"], record["metric_id"], record["attributions_ids"]) == ("F1", "M1", "m1", ["1"])
    monkeypatch.undo()
    reads = reader_for("events", include={}, derived={"metric": "included.metric.name", "first": "included.attributions[0].id"})
    (record,) = normalised(reads, [event], [metric])
    assert (record["metric"], record["first"]) == ("Opened", None)  # attribution 1 is not among the included resources


def test_a_derived_expression_that_fails_on_a_record_gives_null() -> None:
    reader = reader_for("profiles", derived={"email_length": "length(email)"})
    ok, failing = normalised(reader, [{"type": "profile", "id": "a", "attributes": {"email": "a@b.c"}},
                                      {"type": "profile", "id": "b", "attributes": {"email": 5}}])
    assert (ok["email_length"], failing["email_length"]) == (5, None)


PLAIN = dataclasses.replace(SPEC.api, record_format="plain", included=None, records="items")


def test_plain_records_are_kept_as_they_are_with_extra_columns_and_derived_ones() -> None:
    body = {"items": [{"id": 1, "first": "Ada", "last": "Lovelace", "attributes": {"x": 1}}, "junk"]}
    plain = reader_for("profiles", api=PLAIN, derived={"full_name": "join(' ', [first, last])"})
    record, rejected = plain.records(body, plain.page_records(body, "/x"), {"account": "a1"})
    assert record == {"id": 1, "first": "Ada", "last": "Lovelace", "attributes": {"x": 1}, "full_name": "Ada Lovelace", "account": "a1"}
    assert rejected.reason == "a record that is a string, not an object"
    assert body["items"][0] == {"id": 1, "first": "Ada", "last": "Lovelace", "attributes": {"x": 1}}  # the page is not changed
    bare = reader_for("profiles", api=PLAIN)
    assert list(bare.records(body, body["items"][:1], {})) == [body["items"][0]]


def test_a_record_filter_that_fails_on_a_record_drops_it() -> None:
    reader = reader_for("profiles", record_filter="starts_with(email, 'vip')")
    assert [reader.keep(r) for r in ({"email": "vip@example.com"}, {"email": "a@example.com"}, {"email": 5}, {})] == [
        True, False, False, False]
    assert reader_for("profiles").keep({"email": 5})


@pytest.mark.parametrize(("value", "problem"), [
    (None, "missing or null"), ({"id": 1}, "an object, not a string or number"), (["a"], "a list, not a string or number"),
    (True, "a boolean, not a string or number"), ("", "an empty string"), ("  \t", "an empty string"),
    (float("nan"), "nan, not a finite number"), (float("inf"), "inf, not a finite number"),
    (float("-inf"), "-inf, not a finite number"),
])
def test_a_key_that_cannot_identify_a_record_is_named_with_its_problem(value, problem: str) -> None:
    reader = reader_for("profiles")
    assert reader.key_problem({"id": value}) == f"primary key id is {problem}"
    assert value_problem(value) == problem


@pytest.mark.parametrize("value", ["p1", " p1 ", 0, 7, -3, 2**70, 7.5, 0.0])
def test_a_string_or_finite_number_is_a_usable_key(value) -> None:
    assert reader_for("profiles").key_problem({"id": value}) is None
    assert value_problem(value) is None


def test_every_part_of_a_composite_key_is_checked_in_order() -> None:
    reader = reader_for("segments_profiles")
    assert reader.key_problem({"segment_id": "s1", "id": "p1"}) is None
    assert reader.key_problem({"segment_id": "s1"}) == "primary key id is missing or null"
    assert reader.key_problem({"id": "p1", "segment_id": ""}) == "primary key segment_id is an empty string"
    assert reader.key_problem({}) == "primary key segment_id is missing or null"


def test_partitions_cursor_fields_are_each_read_with_their_own_expression() -> None:
    reader = reader_for("profiles")
    record = {"id": "p1", "a": {"t": "2024-06-04T14:00:00+00:00"}, "b": {"t": 1717513200}}
    assert reader.cursor_value(record, "a.t") == datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)
    assert reader.cursor_value(record, "b.t") == datetime(2024, 6, 4, 15, 0, tzinfo=timezone.utc)
    assert reader.cursor_value(record, "a.t") == datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)
    assert reader.cursor_value(record, "max(c)") is None  # a function that fails on this record: no cursor


def test_a_body_without_records_names_its_stream_and_url() -> None:
    reader = RecordReader(SPEC.api, SPEC.streams["profiles"])
    for body in ({"data": {"id": "p1"}}, "data", None, [{"id": "p1"}]):
        with pytest.raises(ApiError) as raised:
            reader.page_records(body, "/api/profiles")
        assert (raised.value.stream, raised.value.url) == ("profiles", "/api/profiles")


@pytest.fixture
def new_york(monkeypatch):
    """The machine's local time zone is America/New_York for the test (parsing must not depend on it)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(("value", "expected"), [
    (1717509600, datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)),
    ("2024-06-04T14:00:00", datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)),
    (datetime(2024, 6, 4, 14, 0), datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)),
    (datetime(2024, 6, 4, 16, 0, tzinfo=timezone(timedelta(hours=2))), datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)),
    (" 2024-06-04T14:00:00Z\n", datetime(2024, 6, 4, 14, 0, tzinfo=timezone.utc)),
])
def test_times_parse_to_the_same_utc_instant_whatever_the_machines_time_zone(new_york, value, expected: datetime) -> None:
    parsed = parse_datetime(value)
    assert parsed == expected and parsed.tzinfo is timezone.utc


@pytest.mark.parametrize("value", [10**20, -(10**20), 1e300, float("inf"), float("-inf"),
                                   "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_outside_what_python_holds_in_utc_parses_to_none(value) -> None:
    assert parse_datetime(value) is None


def test_included_resources_are_found_by_type_and_id_whether_the_id_is_a_number_or_text() -> None:
    included = [{"type": "tag", "id": 1, "attributes": {"name": "number one"}},
                {"type": "tag", "id": "1", "attributes": {"name": "text one"}},
                {"type": "label", "id": 1, "attributes": {"name": "label one"}}]
    data = [{"type": "tag", "id": "1"}, {"type": "tag", "id": 1}, {"type": "tag", "id": 2}, {"type": "tag", "id": 1.5},
            {"type": 7, "id": 1}, {"type": "tag"}, {"type": "tag", "id": 1.0}]
    (record,) = normalised(reader_for("segments"), [{"type": "segment", "id": "s1", "relationships": {"tags": {"data": data}}}], included)
    # 1.0 equals 1 as a dict key, yet a float id names no resource: it is left unresolved too.
    assert (record["tags_ids"], record["tag_names"]) == (["1", 1, 2, 1.5, 1, None, 1.0], ["text one", "number one"])
    assert [type(i) for i in record["tags_ids"][-3:]] == [int, type(None), float]


def test_derived_columns_beyond_the_compiled_subset_see_the_included_resources_and_fail_alone() -> None:
    from engine.derive import Derivations

    # length() and abs() are jmespath's own functions: these columns go through jmespath, not the compiled subset.
    derived = Derivations({"tag_count": "length(included.tags)", "first_tag": "included.tags[0].name", "bad": "abs(name)"})
    record = {"name": "x"}
    derived.apply(record, {"tags": [{"name": "a"}, {"name": "b"}]})
    assert record == {"name": "x", "tag_count": 2, "first_tag": "a", "bad": None}
