"""Authorization and revision headers (API-NOTES §1.1, §1.2, §1.8)."""

from __future__ import annotations

import pytest

from klaviyo_sim.testing import HEADERS, get


def test_missing_key_is_not_authenticated(sim):
    response = get(sim, "/api/metrics", headers={"revision": "2026-07-15"})
    assert response.status_code == 401
    error = response.json()["errors"][0]
    assert (error["code"], error["source"]) == ("not_authenticated", {"pointer": "/data/"})


def test_wrong_key_fails_like_the_recorded_body(sim):
    response = get(sim, "/api/metrics", headers={**HEADERS, "Authorization": "Klaviyo-API-Key pk_wrong"})
    assert response.status_code == 401
    error = response.json()["errors"][0]
    assert set(error) == {"id", "status", "code", "title", "detail", "source"}
    assert (error["status"], error["code"], error["title"], error["detail"]) == (
        401, "authentication_failed", "Incorrect authentication credentials.", "Incorrect authentication credentials.")


def test_missing_revision_is_a_400_naming_the_header(sim):
    response = get(sim, "/api/metrics", headers={"Authorization": HEADERS["Authorization"]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"] == {"parameter": "revision"}


@pytest.mark.parametrize(("revision", "status", "detail"), [
    ("2030-01-15", 404, "Unable to specify a future revision date"),
    ("2022-01-01", 404, "No valid revisions found for method"),
    ("yesterday", 400, None),
])
def test_bad_revisions_are_refused(sim, revision, status, detail):
    response = get(sim, "/api/metrics", headers={**HEADERS, "revision": revision})
    assert response.status_code == status
    if detail:
        assert response.json()["errors"][0]["detail"] == detail


@pytest.mark.parametrize("revision", ["2024-05-15", "2024-10-15", "2026-07-15", "2026-07-15.pre"])
def test_known_revisions_are_accepted(sim, revision):
    assert get(sim, "/api/metrics", headers={**HEADERS, "revision": revision}).status_code == 200


def test_responses_are_json_api_with_rate_limit_headers_while_limits_are_enforced(sim):
    sim.rate_limits = True
    try:
        response = get(sim, "/api/lists")
    finally:
        sim.rate_limits = False
    assert response.headers["Content-Type"] == "application/vnd.api+json"
    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(response.headers)
    # Without limits the simulator describes no window: one counting down to a refusal that never comes would
    # make klx, which paces by these headers, wait for nothing.
    response = get(sim, "/api/lists")
    assert response.status_code == 200 and not {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} & set(response.headers)
