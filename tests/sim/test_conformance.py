"""Every body the simulator serves validates against the 2026-07-15 response schemas."""

from __future__ import annotations

import pytest

from klaviyo_sim.conformance import schema_errors, undeclared_params
from klaviyo_sim.specdata import full_spec_path

from klaviyo_sim.testing import follow, get
from tests.klx_testing import shared_file


@pytest.fixture
def openapi_file():
    """The full OpenAPI file from ../shared (undeclared_params needs only the vendored table)."""
    return shared_file(full_spec_path())


ADDITIONAL = "subscriptions,predictive_analytics"
CASES = [
    ("/api/campaigns", {"filter": "equals(messages.channel,'email')", "include": "campaign-messages,tags", "page[size]": "5"}),
    ("/api/campaigns", {"filter": "equals(messages.channel,'sms'),equals(archived,true)", "include": "campaign-messages,tags"}),
    ("/api/campaigns", {"filter": "equals(messages.channel,'mobile_push')", "sort": "-updated_at", "page[size]": "3"}),
    ("/api/templates", {"sort": "updated"}),
    ("/api/events", {"include": "metric,profile,attributions", "page[size]": "150", "sort": "-datetime"}),
    ("/api/events", {"fields[event]": "datetime,event_properties", "filter": "greater-or-equal(datetime,2026-08-01)"}),
    ("/api/flows", {"include": "flow-actions,tags", "page[size]": "4"}),
    ("/api/flows", {"filter": "equals(archived,true)"}),
    ("/api/lists", {"include": "tags"}),
    ("/api/metrics", {}),
    ("/api/segments", {"include": "tags"}),
    ("/api/profiles", {"page[size]": "40"}),
    ("/api/profiles", {"page[size]": "100", "additional-fields[profile]": ADDITIONAL, "sort": "updated"}),
    ("/api/tags", {"include": "tag-group"}),
    ("/api/accounts", {}),
]


@pytest.mark.parametrize(("path", "params"), CASES, ids=[f"{p}?{'&'.join(q)}" for p, q in CASES])
def test_every_page_matches_the_response_schema(sim, openapi_file, path, params):
    for body in follow(sim, path, params, max_pages=3):
        assert body["data"], path
        assert schema_errors(path, 200, body) == []


def test_segment_profiles_pages_match_the_response_schema(sim, openapi_file):
    segment = next(iter(sim.store.members))
    path = f"/api/segments/{segment}/profiles"
    for body in follow(sim, path, {"page[size]": "50", "additional-fields[profile]": ADDITIONAL}, max_pages=3):
        assert all("joined_group_at" in r["attributes"] for r in body["data"])
        assert schema_errors(path, 200, body) == []


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/api/metrics", {"page[size]": "5"}, 400),
    ("/api/profiles", {"filter": "greater-than(updated,'2024-01-01T00:00:00Z')"}, 400),
    ("/api/events", {"include": "profiless"}, 400),
    ("/api/profiles", {"page[cursor]": "garbage!"}, 400),
    ("/api/segments/NOPE00/profiles", {}, 404),
])
def test_error_bodies_match_the_client_error_schema(sim, openapi_file, path, params, status):
    response = get(sim, path, params)
    assert response.status_code == status
    assert schema_errors(path, status, response.json()) == []


def test_undeclared_params_names_only_unknown_parameters():
    query = {"page[size]": "100", "additional-fields[profile]": "subscriptions", "page_size": "1", "sort": "x"}
    assert undeclared_params("/api/segments/Y6nRLr/profiles/", query) == ["page_size"]
    assert undeclared_params("/api/metrics", {"page[size]": "10", "filter": "x"}) == ["page[size]"]
    assert undeclared_params("https://a.klaviyo.com/api/events?x=1", {"include": "metric"}) == []


def test_undeclared_params_refuses_paths_the_spec_lacks():
    with pytest.raises(ValueError):
        undeclared_params("/api/nope", {})
