"""klx against the simulator where live Klaviyo is easy to get wrong (issue 8): exact rows after each change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from klaviyo_sim import Simulator
from tests.klx_testing import SIM_NOW, START_DATE, rows, sync, write_config


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(seed=5, scale=0.3, now=SIM_NOW) as simulator:
        yield simulator


def config_for(tmp_path: Path, sim: Simulator, resources: dict[str, str], start_date: str = START_DATE) -> tuple[Path, Path]:
    database = tmp_path / "klx.duckdb"
    path = write_config(tmp_path, resources, base_url=sim.url, database=database)
    path.write_text(path.read_text().replace(f"start_date: {START_DATE}", f"start_date: {start_date}"))
    return path, database


def table(database: Path, resource: str, columns: str = "*") -> list[dict]:
    return rows(database, f'select {columns} from "kl_rudder_{resource}"')


def state(database: Path, stream: str) -> dict:
    (row,) = rows(database, "select state from kl_klx_state where stream = ?", [stream])
    return json.loads(row["state"])


def test_a_lifted_suppression_leaves_global_exclusions_on_the_next_incremental_run(sim: Simulator, tmp_path: Path) -> None:
    config, database = config_for(tmp_path, sim, {"global_exclusions": "incremental", "profiles": "incremental"})
    sync(config, sim.api_key, now=SIM_NOW)
    before = {r["id"] for r in table(database, "global_exclusions", "id")}
    assert before == {t["id"] for t in sim.truth("global_exclusions", START_DATE)}
    all_lifted: list[str] = []
    for _ in range(3):  # three rounds of changes, as in the issue
        lifted = sim.mutate("profiles", lift=1, update=5)["lifted"]
        all_lifted += lifted
        sync(config, sim.api_key, now=sim.clock() + timedelta(minutes=5))
        landed = {r["id"] for r in table(database, "global_exclusions", "id")}
        assert landed == {t["id"] for t in sim.truth("global_exclusions", START_DATE)}
        assert lifted and not set(lifted) & landed
        before -= set(lifted)
    assert landed == before
    # profiles and global_exclusions now agree on every lifted profile.
    marketing = {r["id"]: json.loads(r["subscriptions_email_marketing"]) for r in table(database, "profiles", "id, subscriptions_email_marketing")}
    assert {i for i, m in marketing.items() if m["suppression"]} == landed
    assert len(all_lifted) == 3 and all(marketing[i]["consent"] == "SUBSCRIBED" for i in all_lifted)


def test_a_second_suppression_reaches_global_exclusions_though_updated_stays(sim: Simulator, tmp_path: Path) -> None:
    # Live Klaviyo adds a suppression without moving the profile's `updated` (API-NOTES §3.5). The suppressed read
    # finds it by the suppression's timestamp; the row must then take it, though its `updated` is the same.
    config, database = config_for(tmp_path, sim, {"global_exclusions": "incremental"})
    sync(config, sim.api_key, now=SIM_NOW)
    before = {r["id"]: r for r in table(database, "global_exclusions", "id, updated")}
    again = sim.mutate("profiles", resuppress=2)["resuppressed"]
    assert len(again) == 2 and set(again) <= set(before)
    sync(config, sim.api_key, now=sim.clock() + timedelta(minutes=5))
    after = {r["id"]: r for r in table(database, "global_exclusions", "id, updated, subscriptions_email_marketing")}
    for pid in again:
        suppression = json.loads(after[pid]["subscriptions_email_marketing"])["suppression"]
        assert len(suppression) == 2 and after[pid]["updated"] == before[pid]["updated"]
    # What an incremental run keeps is what a full refresh reads now.
    (tmp_path / "fresh").mkdir()
    fresh, fresh_database = config_for(tmp_path / "fresh", sim, {"global_exclusions": "full_refresh"})
    sync(fresh, sim.api_key, now=sim.clock() + timedelta(minutes=5))
    read_now = {r["id"]: r["subscriptions_email_marketing"] for r in table(fresh_database, "global_exclusions", "id, subscriptions_email_marketing")}
    assert {pid: r["subscriptions_email_marketing"] for pid, r in after.items()} == read_now


def test_a_full_refresh_of_a_filtered_stream_needs_no_deletes(sim: Simulator, tmp_path: Path) -> None:
    config, database = config_for(tmp_path, sim, {"global_exclusions": "full_refresh"})
    sync(config, sim.api_key, now=SIM_NOW)
    lifted = sim.mutate("profiles", lift=3)["lifted"]
    sync(config, sim.api_key, now=sim.clock() + timedelta(minutes=5))
    landed = {r["id"] for r in table(database, "global_exclusions", "id")}
    assert landed == {t["id"] for t in sim.truth("global_exclusions", START_DATE)}
    assert len(lifted) == 3 and not set(lifted) & landed


def test_segments_profiles_holds_every_segment_whatever_the_start_date(sim: Simulator, tmp_path: Path) -> None:
    start = (SIM_NOW - timedelta(days=120)).date().isoformat()
    segments = sim.truth("segments")
    old = [s for s in segments if datetime.fromisoformat(s["cursor"]) < SIM_NOW - timedelta(days=120)]
    assert old and len(old) < len(segments), "some segments must predate the start date"
    config, database = config_for(tmp_path, sim, {"segments": "incremental", "segments_profiles": "full_refresh"}, start)
    sync(config, sim.api_key, now=SIM_NOW)
    landed = sorted((r["segment_id"], r["id"]) for r in table(database, "segments_profiles", "segment_id, id"))
    assert landed == sorted((t["segment_id"], t["id"]) for t in sim.truth("segments_profiles", start))
    assert {s["id"] for s in old} <= {segment for segment, _ in landed}
    # The segments table itself still starts at the start date.
    assert {r["id"] for r in table(database, "segments", "id")} == {t["id"] for t in sim.truth("segments", start)}


TAGGED = {"campaigns": "campaign", "flows": "flow", "lists": "list", "segments": "segment"}


def test_simulator_sends_tag_ids_only_when_include_asks_for_them(sim: Simulator) -> None:
    from klaviyo_sim.testing import get

    plain = get(sim, "/api/lists").json()["data"]
    asked = get(sim, "/api/lists", {"include": "tags"}).json()
    assert all("data" not in r["relationships"]["tags"] for r in plain)
    assert any(r["relationships"]["tags"]["data"] for r in asked["data"])
    assert {i["type"] for i in asked["included"]} == {"tag"}


def test_tags_land_as_id_and_name_arrays_on_every_tagged_resource(sim: Simulator, tmp_path: Path) -> None:
    config, database = config_for(tmp_path, sim, {name: "full_refresh" for name in TAGGED})
    sync(config, sim.api_key, now=SIM_NOW)
    small = sim.store.small.tables
    names = {tid: row["attributes"]["name"] for tid, row in small["tag"].rows.items()}
    tagged = 0
    for resource, type_ in TAGGED.items():
        landed = {r["id"]: (json.loads(r["tags_ids"]), json.loads(r["tag_names"])) for r in table(database, resource, "id, tags_ids, tag_names")}
        expected = {}
        for t in sim.truth(resource, START_DATE):
            ids = [tid for _, tid in small[type_].rows[t["id"]]["rels"]["tags"]]
            expected[t["id"]] = (ids, [names[i] for i in ids])
        assert landed == expected, resource
        tagged += sum(1 for ids, _ in expected.values() if ids)
    assert tagged > 10


def test_campaigns_carry_their_messages_sender(sim: Simulator, tmp_path: Path) -> None:
    config, database = config_for(tmp_path, sim, {"campaigns": "full_refresh"})
    sync(config, sim.api_key, now=SIM_NOW)
    landed = {r["id"]: (r["from_email_0"], r["from_label_0"], r["reply_to_email_0"], r["channel"])
              for r in table(database, "campaigns", "id, from_email_0, from_label_0, reply_to_email_0, channel")}
    expected = {}
    for t in sim.truth("campaigns", START_DATE):
        (_, message_id), = sim.store.small.tables["campaign"].rows[t["id"]]["rels"]["campaign-messages"]
        definition = sim.store.small.messages[message_id]["attributes"]["definition"]
        content = definition["content"]
        expected[t["id"]] = (content.get("from_email"), content.get("from_label"), content.get("reply_to_email"), definition["channel"])
    assert landed == expected
    assert {e[0] for e in expected.values() if e[3] == "email"} == {"store@example-shop.com"}
    assert all(e[0] is None for e in expected.values() if e[3] != "email")


def test_events_carry_rudderstacks_flow_campaign_and_profile_columns(sim: Simulator, tmp_path: Path) -> None:
    config, database = config_for(tmp_path, sim, {"events": "full_refresh"})
    sync(config, sim.api_key, now=SIM_NOW)
    columns = "id, flow_id, flow_message_id, campaign_id, profile_email, metric_id, metric_name"
    landed = {r["id"]: tuple(r.values())[1:] for r in table(database, "events", columns)}
    events, profiles = sim.store.events, sim.store.profiles
    expected = {}
    for t in sim.truth("events", START_DATE):
        g, ts = events.handle(t["id"])
        metric_id, metric = events.metric_of(g)
        props = events.properties(g, ts, metric)
        flow = props.get("$flow")
        email = profiles.email(profiles.index[events.profile_of(g)])
        expected[t["id"]] = (flow, props["$message"] if flow else None, None if flow else props.get("$message"), email, metric_id, metric)
    assert landed == expected
    assert sum(1 for e in expected.values() if e[0]) > 100  # flow-sent messages
    assert sum(1 for e in expected.values() if e[2]) > 100  # campaign-sent messages
    # Events whose metric no longer resolves are kept, with a null metric_name (revision 2026-07-15).
    orphans = [e for e in expected.values() if e[5] is None]
    assert orphans and all(e[4] for e in orphans)


def test_a_partition_that_returned_nothing_keeps_the_runs_start_as_its_cursor(sim: Simulator, tmp_path: Path) -> None:
    start = (SIM_NOW - timedelta(days=2)).date().isoformat()
    assert not sim.truth("flows", start), "no flow may have changed in the last two days"
    config, database = config_for(tmp_path, sim, {"flows": "incremental"}, start)
    sync(config, sim.api_key, now=SIM_NOW)
    assert state(database, "flows")["cursor"] == {"archived=false": SIM_NOW.isoformat(), "archived=true": SIM_NOW.isoformat()}
    sim.request_log.clear()
    later = SIM_NOW + timedelta(hours=6)
    sync(config, sim.api_key, now=later)
    filters = sorted(q["filter"] for _, path, q in sim.request_log if path == "/api/flows")
    # The second run reads from the first run's start, not from start_date again.
    assert filters == ["and(greater-or-equal(updated,2026-11-01T00:00:00+00:00),equals(archived,false))",
                       "and(greater-or-equal(updated,2026-11-01T00:00:00+00:00),equals(archived,true))"]
    assert state(database, "flows")["cursor"] == {"archived=false": later.isoformat(), "archived=true": later.isoformat()}


@pytest.mark.parametrize(("path", "since"), [("/api/campaigns", "2026-04-15"), ("/api/lists", "2026-04-15"), ("/api/events", "2026-01-15")])
def test_simulator_refuses_page_size_before_the_revision_that_added_it(sim: Simulator, path: str, since: str) -> None:
    from klaviyo_sim.testing import HEADERS, get

    params = {"page[size]": "10"}
    if path == "/api/campaigns":
        params["filter"] = "equals(messages.channel,'email')"
    older = get(sim, path, params, {**HEADERS, "revision": "2025-10-15"})
    assert older.status_code == 400
    assert older.json()["errors"][0]["source"] == {"pointer": "/data/attributes/page_size"}
    assert get(sim, path, params, {**HEADERS, "revision": since}).status_code == 200


def test_global_exclusions_reads_only_suppressed_profiles_and_catches_suppressions_that_leave_updated_alone(sim: Simulator, tmp_path: Path) -> None:
    config, database = config_for(tmp_path, sim, {"global_exclusions": "incremental"}, "2026-10-01")
    suppressed = {t["id"] for t in sim.truth("global_exclusions")}
    assert 0 < len(suppressed) < len(sim.truth("profiles")) / 5
    first = sync(config, sim.api_key, now=SIM_NOW)
    # Every suppression, whatever start_date, and no other profile read.
    assert {r["id"] for r in table(database, "global_exclusions", "id")} == suppressed
    assert first.streams[0].events == len(suppressed)
    queries = sorted((q["filter"], q["sort"]) for _, path, q in sim.request_log if path == "/api/profiles" and "page[cursor]" not in q)
    assert queries == [
        ("greater-than(subscriptions.email.marketing.suppression.timestamp,1970-01-01T00:00:00+00:00)", "subscriptions.email.marketing.suppression.timestamp"),
        ("greater-than(updated,2026-10-31T23:59:59+00:00)", "updated"),
    ]
    change = sim.mutate("profiles", suppress=3, lift=2, update=4)
    updated_before = {t["id"]: t["cursor"] for t in sim.truth("profiles")}
    assert all(updated_before[i] < "2026-11-01" for i in change["suppressed"])  # a suppression leaves `updated` alone
    sim.request_log.clear()
    second = sync(config, sim.api_key, now=sim.clock() + timedelta(minutes=5))
    landed = {r["id"] for r in table(database, "global_exclusions", "id")}
    assert landed == {t["id"] for t in sim.truth("global_exclusions")} == (suppressed | set(change["suppressed"])) - set(change["lifted"])
    # The second run read the new suppressions and the changed profiles, not every suppressed profile again.
    assert second.streams[0].events <= 3 + 2 + 4 + 2


# /api/lists and /api/segments take only greater-than on `updated` (API-NOTES §3.6, §3.8): a backfill bounds them
# from below on the server, and from above on the client.
UNBOUNDED_ABOVE = ("lists", "segments")


def in_window(sim: Simulator, resource: str, start: datetime, end: datetime) -> dict[str, str]:
    """Truth of `resource` for a backfill of [start, end): id -> cursor."""
    return {t["id"]: t["cursor"] for t in sim.truth(resource) if start <= datetime.fromisoformat(t["cursor"]) < end}


def sent_filters(sim: Simulator, resource: str) -> list[str]:
    return [q.get("filter", "") for _, path, q in sim.request_log if path == f"/api/{resource}"]


def test_a_backfill_of_streams_the_api_cannot_bound_above_lands_exactly_the_window(sim: Simulator, tmp_path: Path) -> None:
    config, database = config_for(tmp_path, sim, {r: "incremental" for r in UNBOUNDED_ABOVE})
    # Two rounds of changes after the simulator's now.
    first = {r: set(sim.mutate(r, update=2)["updated"]) for r in UNBOUNDED_ABOVE}
    second = {r: sim.mutate(r, update=1, create=2) for r in UNBOUNDED_ABOVE}
    later = {r: set(second[r]["updated"] + second[r]["created"]) for r in UNBOUNDED_ABOVE}
    # The window starts at a list's `updated` (read) and ends at the first change of the second round (not read).
    start = min(datetime.fromisoformat(t["cursor"]) for t in sim.truth("lists", "2026-08-01"))
    end = min(datetime.fromisoformat(t["cursor"]) for t in sim.truth("lists") if t["id"] in later["lists"])
    sim.request_log.clear()
    summary = sync(config, sim.api_key, now=sim.clock() + timedelta(minutes=5), window=(start, end))
    assert not summary.failed, [str(s.error) for s in summary.failed]
    for resource in UNBOUNDED_ABOVE:
        expected = in_window(sim, resource, start, end)
        assert first[resource] - later[resource] <= set(expected) and not later[resource] & set(expected)
        assert any(datetime.fromisoformat(t["cursor"]) < start for t in sim.truth(resource))
        landed = {r["id"]: r["updated"].isoformat() for r in table(database, resource, "id, updated")}
        assert landed == expected
        filters = sent_filters(sim, resource)
        assert filters and not any("less-than" in f for f in filters)


def test_a_backfill_of_lists_keeps_saved_cursors_and_leaves_changes_after_its_end_to_the_next_run(sim: Simulator, tmp_path: Path) -> None:
    config, database = config_for(tmp_path, sim, {"lists": "incremental"})
    sync(config, sim.api_key, now=SIM_NOW)
    saved = state(database, "lists")
    before = {r["id"]: r["updated"] for r in table(database, "lists", "id, updated")}
    changed = sim.mutate("lists", update=3, create=1)
    # A backfill of everything up to the simulator's now: what changed since is the next regular run's.
    summary = sync(config, sim.api_key, now=sim.clock() + timedelta(minutes=5), window=(datetime(2020, 1, 1, tzinfo=SIM_NOW.tzinfo), SIM_NOW))
    assert not summary.failed, [str(s.error) for s in summary.failed]
    assert {r["id"]: r["updated"] for r in table(database, "lists", "id, updated")} == before
    assert summary.streams[0].rows == len(before) - len(changed["updated"])
    assert state(database, "lists") == saved
    sync(config, sim.api_key, now=sim.clock() + timedelta(minutes=5))
    assert {r["id"]: r["updated"].isoformat() for r in table(database, "lists", "id, updated")} == in_window(
        sim, "lists", datetime(2020, 1, 1, tzinfo=SIM_NOW.tzinfo), sim.clock() + timedelta(minutes=5))


def test_a_backfill_read_in_cursor_order_stops_paging_past_the_windows_end(sim: Simulator, tmp_path: Path) -> None:
    config, database = config_for(tmp_path, sim, {"lists": "incremental"})
    old = len(sim.truth("lists"))
    sim.mutate("lists", create=30)  # three more pages of lists, all after the window
    sim.request_log.clear()
    summary = sync(config, sim.api_key, now=sim.clock() + timedelta(minutes=5), window=(datetime(2020, 1, 1, tzinfo=SIM_NOW.tzinfo), SIM_NOW))
    assert not summary.failed and len(table(database, "lists", "id")) == old
    # Lists come ten a page, oldest first: the read ends with the first page holding a list changed after the end.
    assert len(sent_filters(sim, "lists")) == old // 10 + 1 < -(-(old + 30) // 10)
