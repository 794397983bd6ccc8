"""Response bodies read for a JSON:API spec: the same values as http.parse_body, minus what records never read."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from pathlib import Path

import msgspec
import pytest

from engine.bodies import Identifier, Relationship, body_parser
from engine.derive import flat
from engine.http import parse_body
from engine.records import RecordReader, Rejected
from engine.spec import Spec
from tests.klx_testing import SHARED, shared_file

SPEC = Spec.from_yaml(Path(__file__).parent.parent / "specs" / "klaviyo.yaml")
PARSE = body_parser(SPEC.api, parse_body)
RECORDED = SHARED / "klaviyo" / "fixtures" / "recorded"

EVENT = {
    "type": "event", "id": "e1", "links": {"self": "https://x/e1"}, "meta": {"m": 1},
    "attributes": {"datetime": "2026-01-01T00:00:00+00:00", "event_properties": {"$flow": "F", "n": [1, 2.5, None, {}]}},
    "relationships": {
        "profile": {"data": {"type": "profile", "id": "p1"}, "links": {"self": "https://x/r", "related": "https://x/p"}},
        "metric": {"data": {"type": "metric", "id": "m1"}, "meta": {"count": 1}},
        "attributions": {"data": [], "links": {"self": "https://x/a"}},
        "lists": {"links": {"related": "https://x/l"}},
    },
}
PROFILE = {"type": "profile", "id": "p1", "attributes": {"email": "a@b.c"}, "links": {"self": "https://x/p1"},
           "relationships": {"lists": {"links": {"self": "https://x"}}}}
PAGE = {"data": [EVENT], "included": [PROFILE], "links": {"next": "https://x/next", "self": "https://x"}, "meta": {"total": 1}}


def _without_links(document: dict) -> dict:
    """What the schema keeps: type, id, attributes and each relationship's data of every resource."""
    out = copy.deepcopy(document)
    for member in ("data", "included"):
        for resource in out.get(member, []):
            for key in [k for k in resource if k not in ("type", "id", "attributes", "relationships")]:
                del resource[key]
            for name, relationship in resource.get("relationships", {}).items():
                resource["relationships"][name] = {k: _identifiers(v) for k, v in relationship.items() if k == "data"}
    return out


def _identifiers(data: object) -> object:
    """A relationship's data as the schema keeps it: each identifier's type and id."""
    if isinstance(data, list):
        return [_identifiers(d) for d in data]
    return {k: v for k, v in data.items() if k in ("type", "id")} if isinstance(data, dict) else data


def _plain(parsed: object) -> object:
    """A parsed body with its relationship structs as the dicts they stand for."""
    return msgspec.to_builtins(parsed)


def _records(document: object) -> list:
    reader = RecordReader(SPEC.api, SPEC.streams["events"])
    return list(reader.records(document, reader.page_records(document, "/x"), {}))


def test_resources_lose_only_their_links_and_meta_and_the_top_level_stays_whole() -> None:
    body = json.dumps(PAGE).encode()
    parsed = PARSE(body)
    assert _plain(parsed) == _without_links(parse_body(body))
    assert parsed["links"] == PAGE["links"] and parsed["meta"] == PAGE["meta"]  # what paginators read
    relationships = parsed["data"][0]["relationships"]
    assert relationships["lists"] == Relationship() and relationships["profile"].data == Identifier(type="profile", id="p1")
    assert _records(parsed) == _records(parse_body(body))


@pytest.mark.parametrize(
    "page",
    [
        {**PAGE, "data": EVENT},  # one resource, not a list
        {**PAGE, "data": [EVENT, "not an object"]},
        {**PAGE, "data": [{**EVENT, "relationships": ["odd"]}]},
        {**PAGE, "data": [{**EVENT, "relationships": {"profile": None}}]},
        {**PAGE, "data": [{**EVENT, "relationships": {"profile": {"data": "p1"}}}]},  # data neither object, list nor null
        {**PAGE, "data": [{**EVENT, "relationships": {"attributions": {"data": [{"type": "a", "id": "1"}, 7]}}}]},
        {**PAGE, "included": {"not": "a list"}},
        [EVENT],  # no top-level object
        {"data": [], "errors": [{"detail": "x"}], "extra member": {"links": 1}},
    ],
)
def test_what_the_schema_does_not_fit_is_read_whole_as_parse_body_reads_it(page: object) -> None:
    body = json.dumps(page).encode()
    parsed, whole = PARSE(body), parse_body(body)
    if isinstance(whole, dict):  # a member the schema fits loses its links; any other is read whole
        assert _plain(parsed) == {name: _without_links({name: v})[name] if _fits(name, v) else v for name, v in whole.items()}
    else:
        assert parsed == whole
    assert [_kind(r) for r in _records_or_none(parsed)] == [_kind(r) for r in _records_or_none(parse_body(body))]


def _fits(name: str, member: object) -> bool:
    """Whether the resource schema reads `member`: a list of objects whose relationships are objects of objects."""
    if name not in ("data", "included") or not isinstance(member, list):
        return False
    for resource in member:
        if not isinstance(resource, dict):
            return False
        relationships = resource.get("relationships", {})
        if not isinstance(relationships, dict) or not all(isinstance(r, dict) and _data_fits(r.get("data")) for r in relationships.values()):
            return False
    return True


def _data_fits(data: object) -> bool:
    """Whether a relationship's data reads as identifiers: an object, a list of objects, or null."""
    return data is None or isinstance(data, dict) or (isinstance(data, list) and all(isinstance(d, dict) for d in data))


def _records_or_none(document: object) -> list:
    try:
        return _records(document)
    except Exception as err:  # noqa: BLE001 - the same failure either way is what is compared
        return [type(err).__name__]


def _kind(record: object) -> object:
    return record.reason if isinstance(record, Rejected) else record


@pytest.mark.parametrize(
    "body",
    [b'{"data": [{"id": "a", "attributes": {"n": NaN}}]}', b'{"data": [{"id": "a", "attributes": {"n": 12345678901234567890123}}]}',
     b'{"data": [{"id": "\\ud800"}]}', b'{"data": [{"id": 1e400}]}', b'{"data": [], "data": [{"id": "last"}]}'],
)
def test_what_only_json_reads_and_long_integers_come_out_as_parse_body_gives_them(body: bytes) -> None:
    expected = parse_body(body)
    assert repr(PARSE(body)) == repr(expected)


def test_numbers_of_any_length_come_out_as_parse_body_gives_them() -> None:
    # Integers beyond 64 bits and floats with long mantissas or large exponents: msgspec reads them itself.
    rng = random.Random(5)
    numbers = ["18446744073709551616", "-9223372036854775809", "0.1234567890123456789012", "1e308", "-0.0", "2.5e-324"]
    for _ in range(3000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40))).lstrip("0") or "0"
        fraction = "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40))) if rng.random() < 0.6 else ""
        exponent = f"e{rng.choice(['', '+', '-'])}{rng.randint(0, 330)}" if rng.random() < 0.4 else ""
        numbers.append(rng.choice(["", "-"]) + digits + fraction + exponent)
    for number in numbers:
        body = b'{"data": [{"id": "a", "attributes": {"n": %s}}], "meta": %s}' % (number.encode(), number.encode())
        assert repr(PARSE(body)) == repr(parse_body(body)), number


@pytest.mark.parametrize("body", [b"", b"{", b'{"data": [1,]}', b"\xff", b'{"data": []} trailing'])
def test_a_body_that_is_not_json_fails_as_parse_body_fails(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_body(body)
    with pytest.raises(ValueError):
        PARSE(body)


def test_recorded_pages_give_the_same_records() -> None:
    pages = sorted(shared_file(RECORDED).glob("*.json"))
    assert pages, f"{RECORDED} holds no recorded pages"
    for path in pages:
        body = path.read_bytes()
        stream = next((s for s in SPEC.streams if s in path.name), None)
        if stream is None:
            continue
        reader = RecordReader(SPEC.api, SPEC.streams[stream])
        got, expected = PARSE(body), parse_body(body)
        try:
            want = list(reader.records(expected, reader.page_records(expected, "/x"), {}))
        except Exception:  # noqa: BLE001 - a recorded error page: both must refuse it alike
            with pytest.raises(Exception):
                list(reader.records(got, reader.page_records(got, "/x"), {}))
            continue
        assert list(reader.records(got, reader.page_records(got, "/x"), {})) == want, path.name


def test_plain_specs_and_nested_record_paths_keep_parse_body() -> None:
    assert body_parser(dataclasses.replace(SPEC.api, record_format="plain"), parse_body) is parse_body
    assert body_parser(dataclasses.replace(SPEC.api, records="result.items", included=None), parse_body) is parse_body


@pytest.mark.parametrize("lists", [("class", "m0"), ("data", "m1")])
def test_record_lists_named_anything_are_read_with_the_schema_in_one_pass_or_two(lists: tuple[str, str]) -> None:
    # The document schema's own field names (m0, m1...) are not members: a member may be named so, or be a keyword.
    records, included = lists
    parse = body_parser(dataclasses.replace(SPEC.api, records=records, included=included), parse_body)
    page = {records: [EVENT], included: [PROFILE], "links": {"next": "https://x/next"}}
    for document in (page, {**page, "m2": {"an": "extra member"}}):
        body = json.dumps(document).encode()
        expected = _without_links({"data": document[records], "included": document[included]})
        assert _plain(parse(body)) == {**parse_body(body), records: expected["data"], included: expected["included"]}


def test_a_page_of_only_json_api_members_is_read_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import bodies

    monkeypatch.setattr(bodies, "_members", None)  # the two-pass split: not used
    body = json.dumps({**PAGE, "jsonapi": {"version": "1.1"}, "errors": None}).encode()
    assert _plain(PARSE(body)) == _without_links(parse_body(body))


ODD_IDENTIFIERS = {
    "profile": {"data": {"id": "p1", "meta": {"x": 1}}},  # no type: the include finds nothing
    "metric": {"data": {"type": "metric", "id": "m1", "meta": {"count": 2}}},
    "attributions": {"data": [{"type": "attribution", "id": 5}, {"id": None}, {"type": "attribution", "id": "a2"}]},
    "campaign-messages": {"data": [{"type": "campaign-message", "id": "cm1"}], "meta": {}},
    "tags": {"data": [{"type": "tag", "id": "t1"}, {"type": "tag", "id": "t2", "meta": {}}]},
    "lists": {"data": None},
    "segments": {"links": {"self": "https://x/s"}},
}
INCLUDED = [
    {"type": "metric", "id": "m1", "attributes": {"name": "Opened"}, "relationships": {"flows": {"data": [{"type": "flow", "id": "f1"}]}}},
    {"type": "profile", "id": "p1", "attributes": {"email": "a@b.c"}},
    {"type": "tag", "id": "t1", "attributes": {"name": "vip"}},
    {"type": "campaign-message", "id": "cm1", "attributes": {"definition": {"content": {"from_email": "x@y.z"}}},
     "relationships": {"template": {"data": {"type": "template", "id": "T1"}}, "gone": {"data": None}}},
]


@pytest.mark.parametrize("stream", ["events", "campaigns", "flows"])
def test_relationship_structs_give_the_records_that_dicts_give(stream: str) -> None:
    """Identifiers without a type, with meta or a number for id, null data and data-less relationships: the
    records of a page read with the schema (structs) are those of the same page read whole (dicts)."""
    resource = {**EVENT, "relationships": ODD_IDENTIFIERS}
    body = json.dumps({**PAGE, "data": [resource, {**resource, "id": "e2"}], "included": INCLUDED}).encode()
    parsed = PARSE(body)
    assert isinstance(parsed["data"][0]["relationships"]["tags"].data[0], Identifier)  # read with the schema
    reader = RecordReader(SPEC.api, SPEC.streams[stream])
    got = list(reader.records(parsed, reader.page_records(parsed, "/x"), {}))
    want = list(reader.records(parse_body(body), reader.page_records(parse_body(body), "/x"), {}))
    assert got == want
    assert got[0]["attributions_ids"] == [5, None, "a2"] and got[0]["lists_id"] is None and "segments_id" not in got[0]
    if stream == "events":
        assert got[0]["metric_name"] == "Opened" and got[0]["profile_email"] is None
    if stream == "campaigns":
        assert got[0]["tag_names"] == ["vip"] and got[0]["from_email_0"] == "x@y.z"
    # derive.flat, which derived columns read included resources through, reads their relationships alike
    flattened = [flat(resource) for resource in parsed["included"]]
    assert flattened == [flat(resource) for resource in parse_body(body)["included"]]
    assert flattened[0]["flows_ids"] == ["f1"] and flattened[3]["template_id"] == "T1" and "gone_id" not in flattened[3]
