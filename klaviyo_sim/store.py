"""All simulated data for one seed: building, mutations at the sim clock, and ground truth."""

from __future__ import annotations

import random
import threading
from datetime import datetime

from klaviyo_sim.data import SmallData
from klaviyo_sim.events import Events
from klaviyo_sim.filters import parse_datetime_literal
from klaviyo_sim.ids import mix
from klaviyo_sim.jsonapi import US, iso, to_us
from klaviyo_sim.profiles import Profiles, SegmentMembers

MUTABLE = {"campaigns": "campaign", "email_templates": "template", "templates": "template", "flows": "flow",
           "lists": "list", "segments": "segment", "profiles": "profile", "events": "event"}
TRUTH = ("campaigns", "email_templates", "events", "flows", "global_exclusions", "lists", "segments",
         "metrics", "profiles", "segments_profiles")
CLOCK_STEP = 60 * US


class Store:
    """Deterministic dataset; a lock serialises mutations against page reads."""

    def __init__(self, seed: int, scale: float, now: datetime) -> None:
        self.seed, self.now_us = seed, to_us(now)
        self.clock_us = self.now_us
        self.lock = threading.RLock()
        self.mutations = 0
        self.small = SmallData(seed, scale, self.now_us)
        lists = list(self.small.tables["list"].rows)
        self.profiles = Profiles(seed, round(1000 * scale), self.now_us, lists)
        self.members: dict[str, SegmentMembers] = {}
        for k, sid in enumerate(self.small.tables["segment"].rows):
            self._add_segment_members(sid, k)
        metrics = [(mid, row["attributes"]["name"]) for mid, row in self.small.tables["metric"].rows.items()]
        campaigns = [(cid, row["rels"]["campaign-messages"][0][1], row["attributes"]["name"])
                     for cid, row in self.small.tables["campaign"].rows.items()]
        flows = [(fid, "M" + row["rels"]["flow-actions"][0][1]) for fid, row in self.small.tables["flow"].rows.items()
                 if row["rels"]["flow-actions"]]
        self.events = Events(seed, round(10_000 * scale), self.now_us, metrics, list(self.profiles.ids) or ["-"],
                             campaigns, flows)

    def _add_segment_members(self, sid: str, k: int, joined_at: int | None = None) -> None:
        rng = random.Random(mix(self.seed, k, 11))
        live = list(self.profiles.index.values())
        # 5–35% of profiles, capped so scale 100 keeps memory and start-up time modest.
        count = min(len(live), 25_000, round(len(live) * (0.05 + 0.3 * rng.random())))
        joined: dict[int, int] = {}
        for i in sorted(rng.sample(live, count)):
            created = self.profiles.created[i]
            joined[i] = joined_at if joined_at is not None else created + rng.randrange(
                max(1, (self.now_us - created) // US)) * US
        self.members[sid] = SegmentMembers(self.profiles, joined)

    def table(self, type_: str) -> object:
        """The store behind one resource type."""
        if type_ == "profile":
            return self.profiles
        if type_ == "event":
            return self.events
        return self.small.tables[type_]

    def mutate(self, resource: str, update: int = 0, create: int = 0, delete: int = 0, suppress: int = 0,
               lift: int = 0, resuppress: int = 0) -> dict[str, list[str]]:
        """Update/create/delete records at the sim clock, which first advances 60 s (so cursors move past now).

        Profiles only: `suppress` adds a global email suppression to a profile without one and, as observed on
        live Klaviyo, leaves `updated` alone (API-NOTES §3.5); `resuppress` adds a second one to a suppressed
        profile, `updated` alone too; `lift` removes them, which is a consent change that moves `updated`
        [inference: a resubscribe writes the profile].
        """
        if resource not in MUTABLE:
            raise ValueError(f"cannot mutate {resource!r}; mutable: {', '.join(sorted(MUTABLE))}")
        type_ = MUTABLE[resource]
        if type_ == "event" and (update or delete):
            raise ValueError("events are immutable in Klaviyo: only create is supported")
        if type_ != "profile" and (suppress or lift or resuppress):
            raise ValueError("only profiles carry suppressions")
        with self.lock:
            self.mutations += 1
            self.clock_us += CLOCK_STEP
            clock = self.clock_us
            rng = random.Random(mix(self.seed, self.mutations, 13))
            table = self.table(type_)
            out: dict[str, list[str]] = {"updated": [], "created": [], "deleted": []}
            if suppress or lift or resuppress:
                out.update(self._suppressions(rng, suppress, lift, resuppress, clock))
            if type_ == "event":
                out["created"] = [self.events.create(clock // US) for _ in range(create)]
                return out
            live = sorted(self.profiles.index) if type_ == "profile" else sorted(table.rows)
            chosen = rng.sample(live, min(len(live), update + delete))
            for id_ in chosen[:update]:
                table.touch(id_, clock)
                out["updated"].append(id_)
            for id_ in chosen[update:]:
                table.delete(id_)
                if type_ == "segment":
                    del self.members[id_]
                out["deleted"].append(id_)
            for k in range(create):
                out["created"].append(self._create(type_, 100_000 + self.mutations * 1000 + k, clock))
            return out

    def _suppressions(self, rng: random.Random, suppress: int, lift: int, resuppress: int, clock: int) -> dict[str, list[str]]:
        p = self.profiles
        live = sorted(p.index)
        suppressed = [pid for pid in live if p.suppressed_at[p.index[pid]] >= 0]
        free = [pid for pid in live if p.suppressed_at[p.index[pid]] < 0]
        lifted = rng.sample(suppressed, min(lift, len(suppressed)))
        added = rng.sample(free, min(suppress, len(free)))
        kept = [pid for pid in suppressed if pid not in set(lifted)]
        again = rng.sample(kept, min(resuppress, len(kept)))
        for pid in lifted:
            p.set_suppression(pid, None, clock)
        for pid in added:
            p.set_suppression(pid, clock, clock)
        for pid in again:
            p.add_suppression(pid, clock)
        return {"lifted": lifted, "suppressed": added, "resuppressed": again}

    def _create(self, type_: str, i: int, clock: int) -> str:
        if type_ == "profile":
            pid = self.profiles.create(clock)
            first = next(iter(self.members.values()), None)
            if first is not None:
                first.joined[self.profiles.index[pid]] = clock
            return pid
        make = {"campaign": self.small.make_campaign, "template": self.small.make_template,
                "flow": self.small.make_flow, "list": self.small.make_list, "segment": self.small.make_segment}
        row = make[type_](i, clock, clock)
        if type_ == "campaign":
            # make_campaign adds random microseconds; a mutation lands exactly on the clock.
            row["keys"]["created_at"] = row["keys"]["updated_at"] = clock
            row["attributes"]["created_at"] = row["attributes"]["updated_at"] = iso(clock, micro=True)
            row["keys"]["scheduled_at"] = None
            row["attributes"]["scheduled_at"] = None
        self.small.tables[type_].add(row)
        if type_ == "segment":
            self._add_segment_members(row["id"], i, joined_at=clock)
        return row["id"]

    def truth(self, resource: str, start_date: str | datetime | None = None) -> list[dict]:
        """Exactly what a correct sync of klx resource `resource` lands, as {"id", "cursor"} dicts."""
        if isinstance(start_date, datetime):
            start = to_us(start_date)
        elif start_date:
            parsed = parse_datetime_literal(start_date)
            if parsed is None:
                raise ValueError(f"unparseable start_date {start_date!r}")
            start = parsed
        else:
            start = -(2**62)
        with self.lock:
            return self._truth(resource, start)

    def _truth(self, resource: str, start: int) -> list[dict]:
        small = self.small.tables
        if resource in ("campaigns", "email_templates", "flows", "lists", "segments"):
            type_ = MUTABLE[resource]
            field = small[type_].cursor_field
            micro = type_ == "campaign"
            return [{"id": i, "cursor": iso(r["keys"][field], micro=micro)}
                    for i, r in small[type_].rows.items() if r["keys"][field] >= start]
        if resource == "metrics":
            return [{"id": i, "cursor": None} for i in small["metric"].rows]
        if resource == "profiles":
            p = self.profiles
            return [{"id": p.ids[i], "cursor": iso(p.updated[i])} for i in p.index.values() if p.updated[i] >= start]
        if resource == "global_exclusions":
            # Every profile suppressed now, whatever start_date: an exclusion list must be complete.
            p = self.profiles
            return [{"id": p.ids[i], "cursor": iso(p.updated[i])} for i in p.index.values() if p.suppressed_at[i] >= 0]
        if resource == "events":
            ev = self.events
            return [{"id": ev.event_id(g, ts), "cursor": iso(ts * US)} for ts, g in zip(ev.ts, ev.gs)
                    if ts * US >= start]
        if resource == "segments_profiles":
            # Current membership of every segment, whatever its `updated` (a full-refresh picture).
            out = []
            for seg in self._truth("segments", -(2**62)):
                members = self.members[seg["id"]]
                for _, pid in members.ordered("id"):
                    out.append({"segment_id": seg["id"], "id": pid, "cursor": None})
            return out
        raise ValueError(f"unknown resource {resource!r}; known: {', '.join(TRUTH)}")
