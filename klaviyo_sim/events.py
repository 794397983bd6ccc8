"""Events generated on the fly from their index: only two sorted int arrays are kept in memory."""

from __future__ import annotations

import bisect
import random
from array import array
from collections.abc import Callable

from klaviyo_sim.ids import hex32, mix, ulid, unit, uuid_from
from klaviyo_sim.jsonapi import US, iso, resource, sparse
from klaviyo_sim.tables import Key

_CROCK = {c: i for i, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}
_LOW56 = (1 << 56) - 1
# Relative weights per metric name (Received/Opened Email dominate real accounts).
WEIGHTS = {"Received Email": 30, "Opened Email": 20, "Clicked Email": 8, "Viewed Product": 12,
           "Active on Site": 10, "Placed Order": 5, "Ordered Product": 5, "Started Checkout": 4}
# Since 2026-07-15 /api/events also returns events whose metric cannot be resolved (a deleted metric):
# about 1% of events point at this metric id, which /api/metrics does not list (API-NOTES §3.3, §6).
ORPHAN_METRIC = "Xdeld1"
ORPHAN_SHARE = 0.01
# Share of email/SMS/push events sent by a flow: they carry $flow and the flow message as $message.
FLOW_SHARE = 0.35
PRODUCTS = [("Classic Tee", 24.0), ("Running Shoes", 89.5), ("Wool Beanie", 19.99), ("Denim Jacket", 120.0),
            ("Yoga Mat", 35.25), ("Water Bottle", 14.0)]


class Events:
    """Sorted by (datetime second, generation index g); ids are ULIDs whose order matches that."""

    def __init__(self, seed: int, count: int, now_us: int, metrics: list[tuple[str, str]],
                 profile_ids: list[str], campaigns: list[tuple[str, str, str]],
                 flows: list[tuple[str, str]] | None = None) -> None:
        self.seed, self.metrics, self.profile_ids, self.campaigns = seed, metrics, profile_ids, campaigns
        self.flows = flows or []  # (flow id, flow message id)
        weights = [WEIGHTS.get(name, 1) for _, name in metrics]
        total, acc, self.cumulative = sum(weights), 0, []
        for w in weights:
            acc += w
            self.cumulative.append(acc / total)
        rng = random.Random(seed * 15_485_863 + 5)
        now_s = now_us // US
        stamps = [now_s - rng.randrange(400 * 86_400) for _ in range(count)]
        if count >= 5000:
            # More than one 1000-event page shares one second (API-NOTES §3.3 quirk).
            tie = now_s - 12 * 86_400
            stamps[:1100] = [tie] * 1100
        if count >= 20:
            # A few events are dated after "now" (clock skew in client-sent events).
            future = 3 + count % 8
            stamps[-future:] = [now_s + rng.randrange(3600, 3 * 86_400) for _ in range(future)]
        stamps.sort()
        self.ts = array("q", stamps)
        self.gs = array("l", range(count))
        self.next_g = count

    def __len__(self) -> int:
        return len(self.ts)

    def event_id(self, g: int, ts: int) -> str:
        """ULID with time = the event second and g in the top random bits, so id order == (ts, g) order."""
        return ulid(ts * 1000, (g << 56) | (mix(self.seed, g, 1) & _LOW56))

    def create(self, ts: int) -> str:
        """Append an event at second `ts` (after every existing event of that second)."""
        g, self.next_g = self.next_g, self.next_g + 1
        pos = bisect.bisect_right(self.ts, ts)
        self.ts.insert(pos, ts)
        self.gs.insert(pos, g)
        return self.event_id(g, ts)

    def ordered(self, field: str) -> _Seq:
        """A lazy (key, id) sequence; datetime, timestamp and id orders coincide."""
        return _Seq(self, field)

    def handle(self, id_: str) -> tuple[int, int] | None:
        """(g, ts) decoded from the id."""
        value = 0
        for char in id_:
            if char not in _CROCK:
                return None
            value = value * 32 + _CROCK[char]
        return (value & ((1 << 80) - 1)) >> 56, (value >> 80) // 1000

    def metric_of(self, g: int) -> tuple[str, str | None]:
        """(metric id, metric name); an orphan event's metric has no name (it no longer exists)."""
        if unit(self.seed, g, 12) < ORPHAN_SHARE:
            return ORPHAN_METRIC, None
        return self.metrics[bisect.bisect_left(self.cumulative, unit(self.seed, g, 3))]

    def flow_of(self, g: int) -> tuple[str, str] | None:
        """(flow id, flow message id) when a flow sent this message event, else None."""
        if not self.flows or unit(self.seed, g, 13) >= FLOW_SHARE:
            return None
        return self.flows[mix(self.seed, g, 14) % len(self.flows)]

    def profile_of(self, g: int) -> str:
        """Profile id the event belongs to."""
        return self.profile_ids[mix(self.seed, g, 2) % len(self.profile_ids)]

    def getter(self, handle: tuple[int, int]) -> Callable[[str], object]:
        """Filter fields of one event."""
        g, ts = handle

        def get(name: str) -> object:
            if name == "id":
                return self.event_id(g, ts)
            if name == "datetime":
                return ts * US
            if name == "timestamp":
                return ts
            if name == "metric_id":
                return self.metric_of(g)[0]
            if name == "metric":  # has(metric): only events whose metric resolves
                mid, metric = self.metric_of(g)
                return mid if metric is not None else None
            if name in ("profile_id", "profile"):
                return self.profile_of(g)
            return None
        return get

    def attributions(self, g: int) -> list[str]:
        """Attribution ids (some orders are attributed to a campaign)."""
        if self.metric_of(g)[1] != "Placed Order" or unit(self.seed, g, 4) > 0.3 or not self.campaigns:
            return []
        return [hex32(self.seed, g, 5)]

    def attribution(self, base: str, g: int, ts: int, aid: str) -> dict:
        """An included attribution object (relationships only)."""
        cid, mid, _ = self.campaigns[mix(self.seed, g, 6) % len(self.campaigns)]
        rels = {"event": ("event", self.event_id(g, ts)), "campaign": ("campaign", cid),
                "campaign-message": ("campaign-message", mid)}
        return resource(base, "attribution", aid, None, rels)

    def properties(self, g: int, ts: int, metric: str | None) -> dict:
        """event_properties: `$`-keys, spaced keys, nested objects (API-NOTES §3.3)."""
        rng = random.Random(mix(self.seed, g, 7))
        props: dict = {"$event_id": f"{ts}:{g}"}
        metric = metric or ""
        if metric in ("Placed Order", "Ordered Product", "Started Checkout"):
            items = [rng.choice(PRODUCTS) for _ in range(rng.randrange(1, 4))]
            value = round(sum(p for _, p in items), 2)
            props.update({"$value": value, "OrderId": f"#{1000 + g}", "ItemNames": [n for n, _ in items],
                          "Items": [{"ProductName": n, "Quantity": 1, "ItemPrice": p} for n, p in items],
                          "Discount Codes": rng.choice([[], ["WELCOME10"]]),
                          "Shipping Address": {"City": "Boston", "Zip": "02110", "Country Code": "US"}})
        elif metric.endswith("Email") or metric.endswith("SMS") or metric.endswith("Push"):
            cid, mid, name = self.campaigns[mix(self.seed, g, 6) % len(self.campaigns)] if self.campaigns \
                else ("", "", "")
            props.update({"Campaign Name": name, "Subject": f"{name} - don't miss out", "$message": mid,
                          "Email Domain": rng.choice(["gmail.com", "yahoo.com"]), "$value": 0.0})
            flow = self.flow_of(g)
            if flow is not None:
                # A flow's message: $flow names the flow, $message the flow message; no campaign.
                del props["Campaign Name"]
                props.update({"$flow": flow[0], "$message": flow[1]})
            if metric == "Clicked Email":
                props["URL"] = "https://example-shop.com/sale?utm_source=klaviyo"
        elif metric == "Viewed Product":
            name, price = rng.choice(PRODUCTS)
            props.update({"ProductName": name, "Price": price, "$value": price,
                          "Categories": ["Apparel", "New"], "$extra": {"referrer": None, "page": "/p/123"}})
        else:
            props.update({"$value": 0, "page": "/", "os": rng.choice(["iOS", "Android", "Windows"])})
        return props

    def render(self, handle: tuple[int, int], base: str, fields: dict[str, list[str]]) -> dict:
        """The JSON:API event object."""
        g, ts = handle
        mid, metric = self.metric_of(g)
        eid = self.event_id(g, ts)
        attrs = {"timestamp": ts, "event_properties": self.properties(g, ts, metric), "datetime": iso(ts * US),
                 "uuid": uuid_from(self.seed, g, 8)}
        rels = {"profile": ("profile", self.profile_of(g)), "metric": ("metric", mid),
                "attributions": [("attribution", a) for a in self.attributions(g)]}
        return resource(base, "event", eid, sparse(attrs, fields.get("event")), rels)


class _Seq:
    """Read-only sequence view so tables.walk can bisect without materialising a million keys."""

    def __init__(self, events: Events, field: str) -> None:
        self.events, self.field = events, field

    def __len__(self) -> int:
        return len(self.events.ts)

    def __getitem__(self, i: int) -> Key:
        ts = self.events.ts[i]
        eid = self.events.event_id(self.events.gs[i], ts)
        if self.field == "timestamp":
            return ts, eid
        if self.field == "id":
            return eid, eid
        return ts * US, eid
