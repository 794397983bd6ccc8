"""The filter language and per-endpoint rules (API-NOTES §1.5, §3.1, §3.4)."""

from __future__ import annotations

import pytest

from klaviyo_sim.errors import ApiError
from klaviyo_sim.filters import And, Cond, DateTimeLiteral, parse, parse_datetime_literal
from klaviyo_sim.testing import get

JAN1 = 1_704_067_200 * 1_000_000


@pytest.mark.parametrize("text", ["2024-01-01", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00+00:00",
                                  "2024-01-01T00:00:00 00:00", "2024-01-01 00:00:00Z", "2024-01-01T00:00:00.000Z",
                                  "2024-01-01T00:00:00+0000", "2023-12-31T19:00:00-05:00"])
def test_unquoted_datetime_forms_all_mean_the_same_instant(text):
    assert parse_datetime_literal(text) == JAN1


def test_top_level_commas_and_and_nest_conditions():
    node = parse("and(equals(messages.channel,\"sms\"),greater-than(updated_at,2024-01-01)),equals(archived,true)")
    assert node == And((And((Cond("equals", "messages.channel", "sms"),
                             Cond("greater-than", "updated_at", DateTimeLiteral(JAN1)))),
                        Cond("equals", "archived", True)))


def test_arrays_numbers_null_and_escaped_quotes_parse():
    assert parse("any(id,['a','b\\'c'])") == Cond("any", "id", ["a", "b'c"])
    assert parse("greater-than(timestamp,1700000000)") == Cond("greater-than", "timestamp", 1700000000)
    assert parse("equals(external_id,null)") == Cond("equals", "external_id", None)


@pytest.mark.parametrize("text", ["equals(id", "nope(id,'x')", "equals(id,'x'))", "equals(id,bare)"])
def test_malformed_filters_raise_invalid(text):
    with pytest.raises(ApiError) as info:
        parse(text)
    assert info.value.status == 400 and info.value.parameter == "filter"


def test_quoted_datetime_is_rejected(sim):
    response = get(sim, "/api/events", {"filter": "greater-or-equal(datetime,'2024-08-01T00:00:00Z')"})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert (error["code"], error["source"]) == ("invalid", {"parameter": "filter"})
    assert error["detail"].startswith("Invalid filter provided")


@pytest.mark.parametrize(("path", "flt"), [
    ("/api/profiles", "greater-or-equal(updated,2024-01-01T00:00:00Z)"),
    ("/api/lists", "less-than(updated,2024-01-01T00:00:00Z)"),
    ("/api/events", "equals(uuid,'x')"),
    ("/api/metrics", "equals(name,'Placed Order')"),
])
def test_operators_the_endpoint_does_not_allow_are_rejected(sim, path, flt):
    assert get(sim, path, {"filter": flt}).status_code == 400


def test_campaigns_without_channel_filter_are_rejected(sim):
    assert get(sim, "/api/campaigns").status_code == 400
    assert get(sim, "/api/campaigns", {"filter": "equals(archived,false)"}).status_code == 400


def test_archived_campaigns_only_come_back_when_asked_for(sim):
    def archived_flags(flt: str) -> set[bool]:
        data = get(sim, "/api/campaigns", {"filter": flt}).json()["data"]
        assert data
        return {r["attributes"]["archived"] for r in data}
    assert archived_flags("equals(messages.channel,'email')") == {False}
    assert archived_flags("equals(messages.channel,'email'),equals(archived,false)") == {False}
    assert archived_flags("equals(messages.channel,'email'),equals(archived,true)") == {True}


def test_archived_flows_only_come_back_when_asked_for(sim):
    live = get(sim, "/api/flows").json()["data"]
    archived = get(sim, "/api/flows", {"filter": "equals(archived,true)"}).json()["data"]
    assert live and archived
    assert not any(r["attributes"]["archived"] for r in live) and all(r["attributes"]["archived"] for r in archived)


def test_datetime_filter_bounds_are_applied(sim):
    data = get(sim, "/api/events", {"filter": "greater-or-equal(datetime,2026-08-20T00:00:00Z),"
                                              "less-than(datetime,2026-08-21)", "page[size]": "1000"}).json()["data"]
    assert data and all("2026-08-20" <= r["attributes"]["datetime"] < "2026-08-21" for r in data)


def test_invalid_include_is_rejected_like_klaviyo(sim):
    error = get(sim, "/api/events", {"include": "profiless"}).json()["errors"][0]
    assert error["detail"] == "'profiless' is not an allowed include parameter for this resource."
    assert error["source"] == {"parameter": "include"}


def test_sort_outside_the_enum_and_sort_on_metrics_are_rejected(sim):
    assert get(sim, "/api/profiles", {"sort": "first_name"}).status_code == 400
    assert get(sim, "/api/metrics", {"sort": "name"}).status_code == 400
