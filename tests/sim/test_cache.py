"""Cached profile JSON: the same bytes as a fresh render, and never stale after a mutation."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from klaviyo_sim import Simulator
from klaviyo_sim.jsonapi import Raw, dumps, encode, iso
from klaviyo_sim.testing import follow, get

NOW = datetime(2026, 9, 1, tzinfo=timezone.utc)
EXTRA = "subscriptions,predictive_analytics"
VARIANTS = [
    ({}, ()),
    ({}, ("subscriptions", "predictive_analytics")),
    ({"profile": ["email", "location.city", "subscriptions.email.marketing.consent"]}, ("subscriptions",)),
]


@pytest.fixture
def fresh():
    with Simulator(seed=5, scale=0.3, now=NOW) as simulator:
        yield simulator


@pytest.mark.parametrize(("fields", "extra"), VARIANTS)
@pytest.mark.parametrize("member", [False, True])
def test_encoded_profile_is_byte_identical_to_encoding_a_fresh_render(fresh, fields, extra, member):
    profiles = fresh.store.profiles
    joined = fresh.store.clock_us if member else None
    for i in profiles.alive():
        text = profiles.encoded(i, fresh.url, fields, extra, joined_us=joined).text
        assert text == encode(profiles.render(i, fresh.url, fields, extra, joined_us=joined))
        assert profiles.encoded(i, fresh.url, fields, extra, joined_us=joined).text == text  # cache hit


def test_dumps_splices_raw_fragments_as_if_they_were_objects():
    objs = [{"type": "profile", "id": "A", "attributes": {"name": "Chloé"}}, {"type": "profile", "id": "B"}]
    body = {"data": [Raw(encode(o)) for o in objs], "links": {"self": "http://x/api/profiles", "next": None}}
    assert dumps(body) == json.dumps({**body, "data": objs}, separators=(",", ":")).encode()
    assert dumps({"data": [], "links": {}}) == b'{"data":[],"links":{}}'


@pytest.mark.parametrize("path", ["/api/profiles", "segment"])
def test_updated_profiles_are_served_fresh_after_being_cached(fresh, path):
    if path == "segment":
        path = f"/api/segments/{next(iter(fresh.store.members))}/profiles"
    params = {"page[size]": "100", "additional-fields[profile]": EXTRA}
    before = {r["id"]: r for body in follow(fresh, path, params) for r in body["data"]}
    follow(fresh, path, params)  # a second pass is served from the cache
    changed = set(fresh.mutate("profiles", update=len(fresh.store.profiles.ids))["updated"]) & set(before)
    after = {r["id"]: r for body in follow(fresh, path, params) for r in body["data"]}
    assert changed and set(after) == set(before)
    clock = iso(fresh.store.clock_us)
    for id_ in changed:
        assert after[id_]["attributes"]["updated"] == clock != before[id_]["attributes"]["updated"]
        assert after[id_]["attributes"]["location"] == fresh.store.profiles.render(
            fresh.store.profiles.index[id_], fresh.url, {}, ())["attributes"]["location"]


# --cache-responses (benchmarks): whole 200 bodies served again while the data is unchanged.

@pytest.fixture
def caching():
    with Simulator(seed=5, scale=0.3, now=NOW, cache_responses=True) as simulator:
        yield simulator


def test_cached_responses_are_the_bytes_an_uncached_simulator_serves(caching, fresh):
    params = {"page[size]": "100", "additional-fields[profile]": EXTRA}
    first = [get(caching, "/api/profiles", params).content for _ in range(2)]
    assert first[0] == first[1]
    # fresh is the same seed and data without the cache; only the host in links differs.
    assert first[0].replace(caching.url.encode(), b"") == get(fresh, "/api/profiles", params).content.replace(fresh.url.encode(), b"")
    assert len(caching._responses) == 1


def test_a_change_to_the_data_is_served_at_once(caching):
    params = {"sort": "-updated", "page[size]": "1"}
    before = get(caching, "/api/profiles", params).json()["data"][0]
    changed = caching.mutate("profiles", update=1)
    after = get(caching, "/api/profiles", params).json()["data"][0]
    assert after["id"] == changed["updated"][0]
    assert after["attributes"]["updated"] > before["attributes"]["updated"]
    assert len(caching._responses) == 1  # the bodies kept before the change were dropped


def test_errors_rate_limits_and_auth_still_apply_to_cached_requests(caching):
    params = {"page[size]": "5"}
    assert get(caching, "/api/lists", params).status_code == 200
    assert get(caching, "/api/lists", params, headers={"revision": "2026-07-15"}).status_code == 401
    bad = {"filter": "equals(nonsense,1)"}
    assert get(caching, "/api/lists", bad).status_code == 400
    assert get(caching, "/api/lists", bad).status_code == 400
    assert all(key[1] == "/api/lists" and "nonsense" not in key[2] for key in caching._responses)
    caching.rate_limits = True
    assert get(caching, "/api/accounts").status_code == 200  # accounts tier: 1/s burst
    assert ("/api/accounts", "") in {key[1:3] for key in caching._responses}
    assert get(caching, "/api/accounts").status_code == 429  # its cached body is not served past the limit
