"""Deterministic small resources: metrics, tags, templates, lists, segments, campaigns, flows, account."""

from __future__ import annotations

import random

from klaviyo_sim.ids import mix, short_id, ulid, uuid_from
from klaviyo_sim.jsonapi import US, iso
from klaviyo_sim.tables import SmallTable

DAY = 86_400 * US
METRICS = [("Placed Order", "Shopify", "eCommerce"), ("Ordered Product", "Shopify", "eCommerce"),
           ("Fulfilled Order", "Shopify", "eCommerce"), ("Started Checkout", "Shopify", "eCommerce"),
           ("Viewed Product", "Klaviyo", "Internal"), ("Active on Site", "Klaviyo", "Internal"),
           ("Received Email", "Klaviyo", "Internal"), ("Opened Email", "Klaviyo", "Internal"),
           ("Clicked Email", "Klaviyo", "Internal"), ("Bounced Email", "Klaviyo", "Internal"),
           ("Unsubscribed", "Klaviyo", "Internal"), ("Received SMS", "Klaviyo", "Internal"),
           ("Clicked SMS", "Klaviyo", "Internal"), ("Received Push", "Klaviyo", "Internal"),
           ("Subscribed to List", "Klaviyo", "Internal")]
TAG_NAMES = ["Newsletter", "Promo", "VIP", "Seasonal", "Welcome", "Win-back", "Black Friday", "Test"]
WORDS = ["Summer", "Spring", "Flash", "Holiday", "Weekly", "VIP", "New Arrivals", "Last Chance", "Restock",
         "Loyalty", "Welcome", "Clearance", "Launch", "Members", "Weekend", "Gift Guide"]
CAMPAIGN_STATUSES = ["Sent", "Draft", "Scheduled", "Cancelled", "Sending", "Adding Recipients"]
FLOW_TRIGGERS = ["Added to List", "Date Based", "Low Inventory", "Metric", "Price Drop", "Unconfigured"]
DT = "datetime"
KINDS = {
    "campaign": {"created_at": DT, "updated_at": DT, "scheduled_at": DT, "archived": "boolean"},
    "template": {"created": DT, "updated": DT},
    "flow": {"created": DT, "updated": DT, "archived": "boolean"},
    "list": {"created": DT, "updated": DT},
    "segment": {"created": DT, "updated": DT, "is_active": "boolean", "is_starred": "boolean"},
    "metric": {}, "tag": {}, "account": {},
}


def scaled(base: int, scale: float, minimum: int) -> int:
    """Small resources grow with sqrt(scale) and never drop below a useful minimum."""
    return max(minimum, round(base * max(1.0, scale ** 0.5)))


class SmallData:
    """All small resources for one seed, plus factories used by mutations."""

    def __init__(self, seed: int, scale: float, now_us: int) -> None:
        self.seed, self.now_us = seed, now_us
        self.rng = random.Random(seed * 7919 + 11)
        self.tables = {t: SmallTable(t, None, KINDS[t]) for t in ("metric", "tag", "account")}
        self.tables["campaign"] = SmallTable("campaign", "updated_at", KINDS["campaign"], micro=True)
        for type_ in ("template", "flow", "list", "segment"):
            self.tables[type_] = SmallTable(type_, "updated", KINDS[type_])
        self.messages: dict[str, dict] = {}
        self.flow_actions: dict[str, dict] = {}
        self.tag_group = {"id": "tg" + short_id(seed, 99), "attributes": {"name": "Default", "exclusive": False,
                                                                         "default": True}}
        self._build(scale)

    def _span(self, key: int) -> tuple[int, int]:
        """(created, updated) spread over [now-400d, now], second precision."""
        rng = random.Random(self.seed * 1_000_003 + key)
        created = self.now_us - rng.randrange(400 * 86_400) * US
        updated = created + rng.randrange(max(1, (self.now_us - created) // US)) * US
        return created, updated

    def _build(self, scale: float) -> None:
        for i, (name, integration, category) in enumerate(METRICS):
            created = self._span(1000 + i)[0]
            mid = short_id(self.seed, 1, i)
            attrs = {"name": name, "created": iso(created), "updated": iso(created),
                     "integration": {"object": "integration", "id": short_id(self.seed, 2, len(integration)),
                                     "name": integration, "category": category}}
            self.tables["metric"].add({"id": mid, "attributes": attrs, "rels": {"flow-triggers": []},
                                       "keys": {"integration.name": integration, "integration.category": category}})
        for i, name in enumerate(TAG_NAMES):
            tid = uuid_from(self.seed, 3, i)
            self.tables["tag"].add({"id": tid, "attributes": {"name": name}, "keys": {"name": name},
                                    "rels": {"tag-group": ("tag-group", self.tag_group["id"])}})
        for i in range(scaled(25, scale, 12)):
            self.tables["template"].add(self.make_template(i, *self._span(2000 + i)))
        for i in range(scaled(12, scale, 6)):
            self.tables["list"].add(self.make_list(i, *self._span(3000 + i)))
        for i in range(scaled(8, scale, 5)):
            self.tables["segment"].add(self.make_segment(i, *self._span(4000 + i)))
        for i in range(scaled(40, scale, 24)):
            self.tables["campaign"].add(self.make_campaign(i, *self._span(5000 + i)))
        for i in range(scaled(20, scale, 12)):
            self.tables["flow"].add(self.make_flow(i, *self._span(6000 + i)))
        self.tables["account"].add(self._account())

    def _tags(self, key: int) -> list[tuple[str, str]]:
        ids = list(self.tables["tag"].rows)
        rng = random.Random(self.seed * 31 + key)
        return [("tag", t) for t in rng.sample(ids, rng.randrange(3))]

    def _name(self, rng: random.Random, suffix: str) -> str:
        return f"{rng.choice(WORDS)} {suffix} #{rng.randrange(1, 999)}"

    def make_template(self, i: int, created: int, updated: int) -> dict:
        """One email template."""
        rng = random.Random(self.seed * 17 + i)
        name = self._name(rng, "Template")
        attrs = {"name": name, "editor_type": rng.choice(["CODE", "SYSTEM_DRAGGABLE", "USER_DRAGGABLE", "SIMPLE"]),
                 "html": f"<html><body><h1>{name}</h1><p>Hello {{{{ first_name|default:'there' }}}}</p></body></html>",
                 "text": None if i % 4 == 0 else f"{name}\nHello!", "amp": None,
                 "created": iso(created), "updated": iso(updated)}
        return {"id": short_id(self.seed, 4, i), "attributes": attrs,
                "keys": {"name": name, "created": created, "updated": updated}}

    def make_list(self, i: int, created: int, updated: int) -> dict:
        """One list."""
        rng = random.Random(self.seed * 19 + i)
        name = self._name(rng, "List")
        attrs = {"name": name, "created": iso(created), "updated": iso(updated),
                 "opt_in_process": rng.choice(["single_opt_in", "double_opt_in"])}
        return {"id": short_id(self.seed, 5, i), "attributes": attrs,
                "keys": {"name": name, "created": created, "updated": updated},
                "rels": {"profiles": None, "tags": self._tags(5000 + i), "flow-triggers": []}}

    def make_segment(self, i: int, created: int, updated: int) -> dict:
        """One segment; members are attached by the Simulator."""
        rng = random.Random(self.seed * 23 + i)
        name = self._name(rng, "Segment")
        lists = list(self.tables["list"].rows)
        definition = {"condition_groups": [{"conditions": [
            {"type": "profile-group-membership", "is_member": True, "group_ids": [rng.choice(lists)],
             "timeframe_filter": None}]}]}
        active, starred = i % 5 != 4, i % 3 == 0
        attrs = {"name": name, "definition": definition, "created": iso(created), "updated": iso(updated),
                 "is_active": active, "is_processing": False, "is_starred": starred}
        return {"id": short_id(self.seed, 6, i), "attributes": attrs,
                "keys": {"name": name, "created": created, "updated": updated, "is_active": active,
                         "is_starred": starred},
                "rels": {"profiles": None, "tags": self._tags(6000 + i), "flow-triggers": []}}

    def make_campaign(self, i: int, created: int, updated: int) -> dict:
        """One campaign (microsecond timestamps) and its campaign-message."""
        rng = random.Random(self.seed * 29 + i)
        channel = ("email", "sms", "mobile_push")[i % 3]
        # Every channel gets archived and live campaigns (i = 0, 1, 2 are archived).
        archived = (i // 3) % 4 == 0
        created += rng.randrange(1, US)
        updated = max(created, updated + rng.randrange(1, US))
        status = rng.choice(CAMPAIGN_STATUSES)
        scheduled = None if status == "Draft" else min(updated, created + rng.randrange(1, 3 * DAY))
        send_us = None if scheduled is None else (scheduled // US + 3600) * US
        name = f"{rng.choice(WORDS)} {channel.replace('_', ' ').title()} Campaign - {iso(created)[:10]}"
        cid = ulid(created // 1000, rng.getrandbits(80))
        mid = ulid(created // 1000 + 1, rng.getrandbits(80))
        lists = list(self.tables["list"].rows)
        if send_us is None:
            strategy: dict = {"method": "immediate"}
        elif i % 2:
            strategy = {"method": "static", "datetime": iso(send_us), "options": {"is_local": False}}
        else:
            strategy = {"method": "throttled", "datetime": iso(send_us), "throttle_percentage": 20}
        attrs = {"name": name, "status": status, "archived": archived,
                 "audiences": {"included": [rng.choice(lists)], "excluded": []},
                 "send_options": {"use_smart_sending": rng.random() < 0.7},
                 "tracking_options": None if channel == "mobile_push" else {
                     "add_tracking_params": True, "is_tracking_clicks": True, "is_tracking_opens": channel == "email",
                     "custom_tracking_params": [{"type": "dynamic", "value": "campaign_name", "name": "utm_campaign"},
                                                {"type": "static", "value": channel, "name": "utm_medium"}]},
                 "send_strategy": strategy, "created_at": iso(created, micro=True),
                 "scheduled_at": iso(scheduled, micro=True), "updated_at": iso(updated, micro=True),
                 "send_time": iso(send_us)}
        self.messages[mid] = {"id": mid, "attributes": self._message(rng, channel, name, created, updated, send_us),
                              "rels": {"campaign": ("campaign", cid)}}
        return {"id": cid, "attributes": attrs,
                "keys": {"name": name, "status": status, "archived": archived, "messages.channel": channel,
                         "created_at": created, "updated_at": updated, "scheduled_at": scheduled},
                "rels": {"campaign-messages": [("campaign-message", mid)], "tags": self._tags(7000 + i)}}

    def _message(self, rng: random.Random, channel: str, name: str, created: int, updated: int,
                 send_us: int | None) -> dict:
        if channel == "email":
            definition: dict = {"channel": "email", "label": name, "content": {
                "subject": f"{rng.choice(WORDS)} picks for you", "preview_text": "New arrivals inside",
                "from_email": "store@example-shop.com", "from_label": "Example Shop",
                "reply_to_email": None, "cc_email": None, "bcc_email": None}}
        elif channel == "sms":
            definition = {"channel": "sms", "content": {"body": f"{name}: 20% off today! Reply STOP to opt out",
                                                        "media_url": None},
                          "render_options": {"shorten_links": True, "add_org_prefix": True,
                                             "add_info_link": True, "add_opt_out_language": False}}
        else:
            definition = {"channel": "mobile_push", "notification_type": "standard",
                          "content": {"title": name, "body": "Tap to see what's new", "dynamic_image": None},
                          "kv_pairs": None, "options": {"on_open": None, "badge": None, "play_sound": True}}
        return {"definition": definition,
                "send_times": [] if send_us is None else [{"datetime": iso(send_us), "is_local": False}],
                "created_at": iso(created + 1, micro=True), "updated_at": iso(updated, micro=True)}

    def make_flow(self, i: int, created: int, updated: int) -> dict:
        """One flow and its flow-actions."""
        rng = random.Random(self.seed * 37 + i)
        name = self._name(rng, "Flow")
        archived = i % 4 == 0
        status = rng.choice(["live", "draft", "manual"])
        trigger = rng.choice(FLOW_TRIGGERS)
        fid = short_id(self.seed, 8, i, created)
        actions = []
        for k in range(rng.randrange(1, 4)):
            aid = str(60_000_000 + (mix(self.seed, i, k, created) % 9_000_000))
            actions.append(("flow-action", aid))
            self.flow_actions[aid] = {"id": aid, "attributes": {
                "created": iso(created), "updated": iso(updated),
                "definition": {"id": aid, "type": "time-delay", "links": {"next": None},
                               "data": {"unit": "days", "value": k + 1, "secondary_value": None}}},
                "rels": {"flow": ("flow", fid)}}
        attrs = {"name": name, "status": status, "archived": archived, "created": iso(created),
                 "updated": iso(updated), "trigger_type": trigger}
        return {"id": fid, "attributes": attrs,
                "keys": {"name": name, "status": status, "archived": archived, "created": created,
                         "updated": updated, "trigger_type": trigger},
                "rels": {"flow-actions": actions, "tags": self._tags(8000 + i)}}

    def _account(self) -> dict:
        attrs = {"test_account": False, "contact_information": {
            "default_sender_name": "Example Shop", "default_sender_email": "store@example-shop.com",
            "website_url": "https://example-shop.com", "organization_name": "Example Shop Inc.",
            "street_address": {"address1": "125 Summer St", "address2": "Floor 6", "city": "Boston",
                               "region": "MA", "country": "US", "zip": "02110"}},
            "industry": "Apparel & Accessories", "timezone": "America/New_York", "preferred_currency": "USD",
            "public_api_key": short_id(self.seed, 9), "locale": "en-US"}
        return {"id": short_id(self.seed, 10), "attributes": attrs, "keys": {}}

