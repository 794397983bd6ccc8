"""Cursor pagination: keyset across tie clusters, links, page sizes (API-NOTES §1.4)."""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qsl, urlsplit

import requests

from klaviyo_sim.testing import HEADERS, follow, get


def _ids(bodies: list[dict]) -> list[str]:
    return [r["id"] for body in bodies for r in body["data"]]


def test_profiles_tie_cluster_is_paged_without_skips_or_repeats(sim):
    updated = Counter(sim.store.profiles.updated[i] for i in sim.store.profiles.index.values())
    assert updated.most_common(1)[0][1] >= 120
    bodies = follow(sim, "/api/profiles", {"sort": "updated", "page[size]": "100",
                                           "filter": "greater-than(updated,2020-01-01T00:00:00Z)"})
    ids = _ids(bodies)
    assert len(ids) == len(set(ids)) == len(sim.truth("profiles"))


def test_events_tie_cluster_is_paged_without_skips_or_repeats(sim):
    assert Counter(sim.store.events.ts).most_common(1)[0][1] > 1000
    ids = _ids(follow(sim, "/api/events", {"sort": "datetime", "page[size]": "1000"}))
    assert len(ids) == len(set(ids)) == len(sim.truth("events"))


def test_descending_sort_returns_every_record_in_reverse(sim):
    up = _ids(follow(sim, "/api/events", {"sort": "datetime", "page[size]": "700"}))
    down = _ids(follow(sim, "/api/events", {"sort": "-datetime", "page[size]": "700"}))
    assert down == up[::-1]


def test_next_link_recarries_every_parameter_with_cursor_last(sim):
    params = {"filter": "equals(messages.channel,'email')", "sort": "updated_at", "include": "tags", "page[size]": "2"}
    body = get(sim, "/api/campaigns", params).json()
    link = body["links"]["next"]
    assert "page%5Bcursor%5D=" in link and "%28" in link and "%27email%27" in link
    query = parse_qsl(urlsplit(link).query)
    assert [k for k, _ in query] == ["filter", "sort", "include", "page[size]", "page[cursor]"]
    assert dict(query)["filter"] == params["filter"]


def test_last_page_has_null_next_and_first_page_null_prev(sim):
    bodies = follow(sim, "/api/segments", {})
    assert bodies[0]["links"]["prev"] is None
    assert bodies[-1]["links"]["next"] is None


def test_prev_link_returns_the_previous_page(sim):
    first = get(sim, "/api/profiles", {"page[size]": "30"}).json()
    second = requests.get(first["links"]["next"], headers=HEADERS, timeout=10).json()
    back = requests.get(second["links"]["prev"], headers=HEADERS, timeout=10).json()
    assert _ids([back]) == _ids([first])


def test_garbage_cursor_is_rejected(sim):
    response = get(sim, "/api/profiles", {"page[cursor]": "bm90LWEtY3Vyc29y"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["detail"] == "Invalid cursor provided."


def test_page_size_defaults_and_bounds_follow_the_spec(sim):
    assert len(get(sim, "/api/profiles").json()["data"]) == 20
    assert len(get(sim, "/api/templates").json()["data"]) == 10
    assert len(get(sim, "/api/events").json()["data"]) == 200
    assert get(sim, "/api/profiles", {"page[size]": "101"}).status_code == 400
    assert get(sim, "/api/flows", {"page[size]": "0"}).status_code == 400
    assert get(sim, "/api/events", {"page[size]": "1000"}).status_code == 200


def test_metrics_refuse_page_size_like_klaviyo(sim):
    error = get(sim, "/api/metrics", {"page[size]": "10"}).json()["errors"][0]
    assert error["detail"] == "'page_size' is not a valid field for the resource 'metric'."
    assert error["source"] == {"pointer": "/data/attributes/page_size"}


def test_trailing_slash_paths_are_served_and_echoed(sim):
    body = get(sim, "/api/lists/").json()
    assert body["links"]["self"].endswith("/api/lists/")
    assert urlsplit(body["links"]["next"]).path == "/api/lists/"


def test_unknown_query_parameter_is_rejected(sim):
    response = get(sim, "/api/profiles", {"page_size": "10"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"] == {"parameter": "page_size"}


def test_additional_fields_gate_subscriptions_and_predictive_analytics(sim):
    plain = get(sim, "/api/profiles").json()["data"][0]["attributes"]
    rich = get(sim, "/api/profiles", {"additional-fields[profile]": "subscriptions,predictive_analytics"}).json()
    assert "subscriptions" not in plain and "predictive_analytics" not in plain
    assert {"subscriptions", "predictive_analytics"} <= set(rich["data"][0]["attributes"])


def test_unknown_segment_profiles_is_not_found(sim):
    error = get(sim, "/api/segments/XXXXXX/profiles").json()["errors"][0]
    assert error["code"] == "not_found"
