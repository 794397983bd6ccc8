"""Cached profile JSON: the same bytes as a fresh render, and never stale after a mutation."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from klaviyo_sim import Simulator
from klaviyo_sim.jsonapi import Raw, dumps, encode, iso
from klaviyo_sim.testing import follow

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
