"""Ground truth matches what the API serves, before and after mutations; data is deterministic."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from klaviyo_sim import Simulator
from klaviyo_sim.testing import follow

NOW = datetime(2026, 9, 1, tzinfo=timezone.utc)
START = "2026-01-01T00:00:00+00:00"


@pytest.fixture
def fresh():
    with Simulator(seed=11, scale=0.3, now=NOW) as simulator:
        yield simulator


def _served(sim: Simulator, path: str, params: dict) -> set[str]:
    return {r["id"] for body in follow(sim, path, params) for r in body["data"]}


def _campaign_ids(sim: Simulator, start: str) -> set[str]:
    ids: set[str] = set()
    for channel in ("email", "sms", "mobile_push"):
        for archived in ("true", "false"):
            flt = f"equals(messages.channel,'{channel}'),equals(archived,{archived}),greater-or-equal(updated_at,{start})"
            ids |= _served(sim, "/api/campaigns", {"filter": flt})
    return ids


def test_truth_equals_a_correct_sync_of_every_resource(fresh):
    assert _campaign_ids(fresh, START) == {r["id"] for r in fresh.truth("campaigns", START)}
    assert _served(fresh, "/api/profiles", {"filter": f"greater-than(updated,{START})", "page[size]": "100"}) == \
        {r["id"] for r in fresh.truth("profiles", "2026-01-01T00:00:01Z")}
    assert _served(fresh, "/api/events", {"filter": f"greater-or-equal(datetime,{START})"}) == \
        {r["id"] for r in fresh.truth("events", START)}
    flows = _served(fresh, "/api/flows", {"filter": f"greater-or-equal(updated,{START})"}) | \
        _served(fresh, "/api/flows", {"filter": f"greater-or-equal(updated,{START}),equals(archived,true)"})
    assert flows == {r["id"] for r in fresh.truth("flows", START)}
    assert _served(fresh, "/api/metrics", {}) == {r["id"] for r in fresh.truth("metrics")}


def test_truth_covers_the_edge_cases_a_sync_must_handle(fresh):
    events = fresh.truth("events", START)
    assert sum(r["cursor"] > "2026-09-01T00:00:00+00:00" for r in events) >= 3
    exclusions = fresh.truth("global_exclusions")
    assert 0 < len(exclusions) < len(fresh.truth("profiles"))
    pairs = fresh.truth("segments_profiles")
    assert pairs and set(pairs[0]) == {"segment_id", "id", "cursor"}


def test_mutations_move_cursors_past_now_and_show_in_truth(fresh):
    before = {r["id"] for r in fresh.truth("profiles", START)}
    changed = fresh.mutate("profiles", update=5, create=3, delete=2)
    after = {r["id"]: r["cursor"] for r in fresh.truth("profiles", START)}
    assert set(changed["updated"]) | set(changed["created"]) <= set(after)
    assert not set(changed["deleted"]) & set(after)
    assert all(after[i] == "2026-09-01T00:01:00+00:00" for i in changed["updated"] + changed["created"])
    assert set(after) == (before | set(changed["updated"]) | set(changed["created"])) - set(changed["deleted"])
    since = {r["id"] for r in fresh.truth("profiles", "2026-09-01T00:00:30Z")}
    assert since == set(changed["updated"]) | set(changed["created"])
    served = _served(fresh, "/api/profiles", {"filter": "greater-than(updated,2026-09-01T00:00:30Z)"})
    assert served == since


def test_mutation_control_endpoint_advances_the_clock(fresh):
    body = requests.post(f"{fresh.url}/_sim/mutate", json={"resource": "campaigns", "update": 2}, timeout=5).json()
    assert body["clock"] == "2026-09-01T00:01:00+00:00" and len(body["updated"]) == 2
    cursors = {r["id"]: r["cursor"] for r in fresh.truth("campaigns", "2026-09-01T00:00:30Z")}
    assert set(cursors) == set(body["updated"])
    truth = requests.get(f"{fresh.url}/_sim/truth", params={"resource": "campaigns",
                                                           "start_date": "2026-09-01T00:00:30Z"}, timeout=5).json()
    assert {r["id"] for r in truth["records"]} == set(body["updated"])


def test_a_second_suppression_adds_an_item_leaves_updated_and_is_found_by_its_timestamp(fresh):
    # API-NOTES §3.5: a suppression leaves `updated` alone; the suppression filter reads its timestamp.
    def suppressed(since: str) -> dict[str, dict]:
        params = {"filter": f"greater-than(subscriptions.email.marketing.suppression.timestamp,{since})",
                  "additional-fields[profile]": "subscriptions"}
        return {r["id"]: r["attributes"] for body in follow(fresh, "/api/profiles", params) for r in body["data"]}

    before = suppressed("1970-01-01T00:00:00Z")
    body = requests.post(f"{fresh.url}/_sim/mutate", json={"resource": "profiles", "resuppress": 2}, timeout=5).json()
    again = body["resuppressed"]
    assert len(again) == 2 and set(again) <= set(before)
    found = suppressed("2026-09-01T00:00:30Z")
    assert set(found) == set(again)
    for pid in again:
        items = found[pid]["subscriptions"]["email"]["marketing"]["suppression"]
        first = before[pid]["subscriptions"]["email"]["marketing"]["suppression"]
        assert items[0] == first[0] and items[1]["timestamp"] == "2026-09-01T00:01:00+00:00" and len(items) == 2
        assert items[1]["reason"] != items[0]["reason"]
        assert found[pid]["updated"] == before[pid]["updated"]
    lifted = fresh.mutate("profiles", lift=len(before))["lifted"]  # every suppression lifted: none left, nor a second item
    assert set(lifted) == set(before) and not suppressed("1970-01-01T00:00:00Z")


def test_events_can_only_be_created(fresh):
    created = fresh.mutate("events", create=4)["created"]
    assert {r["id"] for r in fresh.truth("events", "2026-09-01T00:00:30Z")} >= set(created)
    with pytest.raises(ValueError):
        fresh.mutate("events", update=1)


def test_same_seed_gives_the_same_data_and_another_seed_does_not():
    def snapshot(seed: int) -> list:
        sim = Simulator(seed=seed, scale=0.2, now=NOW)
        return [sim.truth(r) for r in ("campaigns", "profiles", "events", "segments_profiles")]
    assert snapshot(5) == snapshot(5) != snapshot(6)


def test_small_scale_still_has_every_kind_of_record():
    sim = Simulator(seed=0, scale=0.2, now=NOW)
    campaigns = sim.store.small.tables["campaign"].rows.values()
    kinds = {(c["keys"]["messages.channel"], c["keys"]["archived"]) for c in campaigns}
    assert kinds == {(ch, a) for ch in ("email", "sms", "mobile_push") for a in (True, False)}
    assert any(f["keys"]["archived"] for f in sim.store.small.tables["flow"].rows.values())
    assert len(sim.store.members) >= 5 and all(m.joined for m in sim.store.members.values())
