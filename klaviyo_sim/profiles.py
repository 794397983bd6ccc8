"""Profiles stored compactly (ids, timestamps, flags) and rendered on demand, so scale 100 stays small."""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable
from functools import lru_cache

from klaviyo_sim.ids import mix, ulid, unit
from klaviyo_sim.jsonapi import US, Raw, encode, iso, resource, sparse
from klaviyo_sim.tables import Key, sort_key

FIRST = ["Jennifer", "Sarah", "Michael", "David", "Emma", "Olivia", "Liam", "Noah", "Ava", "Sophia", "Mateo",
         "Yuki", "Amara", "Chloé", "José", "Priya", "Lars", "Fatima", "Oliver", "Mia"]
LAST = ["Mason", "Smith", "Garcia", "Nguyen", "Müller", "Kowalski", "O'Brien", "Patel", "Kim", "Rossi",
        "Johnson", "Brown", "Silva", "Haddad", "Tanaka", "Dubois", "Jensen", "Lopez", "Chen", "Walker"]
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "example.com", "icloud.com", "proton.me"]
PLACES = [("Boston", "MA", "United States", "02110", "America/New_York", "42.3601", "-71.0589"),
          ("New York", "NY", "United States", "10017", "America/New_York", "40.7527", "-73.9772"),
          ("Austin", "TX", "United States", "73301", "America/Chicago", "30.2672", "-97.7431"),
          ("London", "England", "United Kingdom", "SW1A 1AA", "Europe/London", "51.5072", "-0.1276"),
          ("Berlin", "Berlin", "Germany", "10115", "Europe/Berlin", "52.52", "13.405"),
          ("Toronto", "ON", "Canada", "M5H 2N2", "America/Toronto", "43.6532", "-79.3832")]
REASONS = ["UNSUBSCRIBE", "HARD_BOUNCE", "SPAM_COMPLAINT", "USER_SUPPRESSED", "INVALID_EMAIL"]
SUPPRESSION = "subscriptions.email.marketing.suppression"
LIST_SUPPRESSION = "subscriptions.email.marketing.list_suppressions"
ORGS = (None, "Example Corporation", "Acme Inc.", "Globex")
LOCALES = (None, "en-US", "en-GB", "de-DE", "fr-CA")
TIERS = ("Gold", "Silver", "Bronze")
SOURCES = ("Shopify", "Signup Form", "API")
COLORS = (["red", "blue"], ["green", "black"], ["blue", "black"], ["red", "green"])
# Encoded profiles kept (~3 KB each): a scale-10 store fits whole; larger ones keep the recent pages.
ENCODED_CACHE = 20_000
KINDS = {"created": "datetime", "updated": "datetime", f"{SUPPRESSION}.timestamp": "datetime",
         f"{LIST_SUPPRESSION}.timestamp": "datetime", "joined_group_at": "datetime"}


class Profiles:
    """All profiles; index i is stable for a profile's lifetime."""

    def __init__(self, seed: int, count: int, now_us: int, list_ids: list[str]) -> None:
        self.seed, self.now_us, self.list_ids = seed, now_us, list_ids
        self.ids: list[str] = []
        self.created, self.updated, self.suppressed_at = array("q"), array("q"), array("q")
        self.version = array("l")
        self.index: dict[str, int] = {}
        self._orders: dict[str, list[Key]] = {}
        self._emails: dict[int, str] = {}
        self._names: dict[int, int] = {}
        # A profile suppressed again (add_suppression): its first suppression's time; suppressed_at holds the latest.
        self.first_suppressed: dict[int, int] = {}
        self.generation = 0  # bumped on every change so dependent caches know to rebuild
        # Keyed by the profile's version and `updated` too, so a touched profile is re-rendered, never stale.
        self._encoded = lru_cache(maxsize=ENCODED_CACHE)(self._encode)
        rng = random.Random(seed * 104_729 + 3)
        for i in range(count):
            created = now_us - rng.randrange(400 * 86_400) * US
            updated = created + rng.randrange(max(1, (now_us - created) // US)) * US
            self._append(i, created, updated, rng)
        if count >= 200:
            # More than one page (klx asks for 100) shares one `updated` second: keyset cursors must
            # carry the id to neither skip nor repeat these (API-NOTES §3.3 quirk, §1.4).
            tie = now_us - 30 * 86_400 * US
            for i in rng.sample(range(count), 130):
                self.created[i] = min(self.created[i], tie)
                self.updated[i] = tie

    def _append(self, i: int, created: int, updated: int, rng: random.Random) -> None:
        self.ids.append(ulid(created // 1000, rng.getrandbits(80)))
        self.index[self.ids[-1]] = i
        self.created.append(created)
        self.updated.append(updated)
        # About 10% carry a global email suppression (API-NOTES §3.5).
        suppressed = unit(self.seed, i, 77) < 0.1
        self.suppressed_at.append(updated - rng.randrange(0, 3600) * US if suppressed else -1)
        self.version.append(0)

    def create(self, us: int) -> str:
        """Add a profile created (and updated) at `us`."""
        i = len(self.ids)
        self._append(i, us, us, random.Random(mix(self.seed, i, us)))
        if self.suppressed_at[i] >= 0:
            self.suppressed_at[i] = us
        self._changed()
        return self.ids[i]

    def touch(self, id_: str, us: int) -> None:
        """An update at the sim clock: new `updated`, re-rendered attributes."""
        i = self.index[id_]
        self.updated[i] = us
        self.version[i] += 1
        self._changed()

    def set_suppression(self, id_: str, at: int | None, clock: int) -> None:
        """Add a global suppression at `at`, or lift it (None): a lift also moves `updated` to `clock`."""
        i = self.index[id_]
        self.suppressed_at[i] = -1 if at is None else at
        self.first_suppressed.pop(i, None)
        if at is None:
            self.updated[i] = clock
        self._changed()

    def add_suppression(self, id_: str, at: int) -> None:
        """A further suppression of a suppressed profile at `at` (a spam complaint after an unsubscribe, say): the
        suppression array gains an item and `updated` stays, as a first suppression leaves it (API-NOTES §3.5)."""
        i = self.index[id_]
        self.first_suppressed.setdefault(i, self.suppressed_at[i])
        self.suppressed_at[i] = at
        self._changed()

    def delete(self, id_: str) -> None:
        """Forget a profile."""
        del self.index[id_]
        self._changed()

    def _changed(self) -> None:
        self._orders.clear()
        self.generation += 1

    def alive(self) -> list[int]:
        """Indices of existing profiles."""
        return list(self.index.values())

    def email(self, i: int) -> str:
        """Deterministic email address (memoised: it never changes and filters/sorts read it often)."""
        cached = self._emails.get(i)
        if cached is not None:
            return cached
        h = mix(self.seed, i, 5)
        first, last = FIRST[h % 20].lower(), LAST[(h >> 8) % 20].lower().replace("'", "")
        email = f"{first}.{last}{i}@{DOMAINS[(h >> 16) % len(DOMAINS)]}".replace("ü", "u").replace("é", "e")
        self._emails[i] = email
        return email

    def _name_hash(self, i: int) -> int:
        cached = self._names.get(i)
        if cached is None:
            cached = self._names[i] = mix(self.seed, i, 5)
        return cached

    def phone(self, i: int) -> str | None:
        """About 60% have a phone number."""
        h = mix(self.seed, i, 6)
        return None if h % 10 < 4 else f"+1617555{h % 10_000:04d}"

    def list_suppression(self, i: int) -> dict | None:
        """About 3% are suppressed from one list."""
        h = mix(self.seed, i, 8)
        if h % 100 >= 3 or not self.list_ids:
            return None
        return {"list_id": self.list_ids[h % len(self.list_ids)], "reason": "USER_SUPPRESSED",
                "timestamp": self.created[i] + (h % 86_400) * US}

    def ordered(self, field: str) -> list[Key]:
        """(sort value, id) ascending for every live profile."""
        if field not in self._orders:
            kind = KINDS.get(field, "string")
            self._orders[field] = sorted((sort_key(self.field(i, field), kind), self.ids[i])
                                         for i in self.index.values())
        return self._orders[field]

    def handle(self, id_: str) -> int | None:
        """Index of the profile with this id."""
        return self.index.get(id_)

    def field(self, i: int, name: str) -> object:
        """Filter/sort value of one field."""
        if name == "id":
            return self.ids[i]
        if name in ("created", "updated"):
            return (self.created if name == "created" else self.updated)[i]
        if name == "email":
            return self.email(i)
        if name == "phone_number":
            return self.phone(i)
        if name == "external_id":
            return f"cust-{mix(self.seed, i, 4) % 10**8:08d}" if i % 3 == 0 else None
        if name.startswith(SUPPRESSION):
            at = self.suppressed_at[i]
            if at < 0:
                return None
            return at if name.endswith("timestamp") else REASONS[mix(self.seed, i, 9) % len(REASONS)]
        if name.startswith(LIST_SUPPRESSION):
            sup = self.list_suppression(i)
            return None if sup is None else sup[name.rsplit(".", 1)[1]]
        return None

    def getter(self, i: int) -> Callable[[str], object]:
        """Field accessor used by filters."""
        return lambda name: self.field(i, name)

    def attributes(self, i: int, extra: tuple[str, ...]) -> dict:
        """Profile attributes (+ subscriptions / predictive_analytics when asked, API-NOTES §1.6)."""
        # Choices come from bit windows of two hashes, not a random.Random per profile: this is the hot path.
        b = mix(self.seed, i, self.version[i])
        h = self._name_hash(i)
        created, updated = self.created[i], self.updated[i]
        city, region, country, zip_, tz, lat, lon = PLACES[b % 6]
        phone, consented = self.phone(i), iso(created)
        attrs = {
            "email": self.email(i), "phone_number": phone, "external_id": self.field(i, "external_id"),
            "first_name": FIRST[h % 20], "last_name": LAST[(h >> 8) % 20],
            "organization": ORGS[(b >> 3) & 3], "locale": LOCALES[(b >> 5) % 5],
            "title": None, "image": None, "created": consented, "updated": iso(updated),
            "last_event_date": iso(max(created, updated - ((b >> 8) & 4095) * US)),
            "location": {"address1": f"{1 + ((b >> 20) & 511)} Main St", "address2": None, "city": city,
                         "country": country, "latitude": lat, "longitude": lon, "region": region,
                         "zip": zip_, "timezone": tz, "ip": f"203.0.113.{1 + ((b >> 29) & 127)}"},
            "properties": {"Loyalty Tier": TIERS[(b >> 36) % 3], "$source": SOURCES[(b >> 38) % 3],
                           "Accepts Marketing": (b >> 40) & 7 != 0, "favorite colors": COLORS[(b >> 43) & 3],
                           "shoe_size": 5 + ((b >> 45) & 7),
                           "preferences": {"newsletter": True, "frequency": ("weekly", "monthly")[(b >> 48) & 1]}},
        }
        if "subscriptions" in extra:
            attrs["subscriptions"] = self._subscriptions(i, (b >> 50) & 3 == 0, phone, consented)
        if "predictive_analytics" in extra:
            m = mix(b, 1)
            orders = m % 12
            aov = 15 + ((m >> 4) % 23_500) / 100
            attrs["predictive_analytics"] = {
                "historic_clv": round(orders * aov, 2), "predicted_clv": ((m >> 20) % 30_000) / 100,
                "total_clv": round(orders * aov + 50, 2), "historic_number_of_orders": orders,
                "predicted_number_of_orders": ((m >> 35) % 300) / 100,
                "average_days_between_orders": 10 + (m >> 44) % 290 if orders > 1 else None,
                "average_order_value": aov if orders else 0.0, "churn_probability": ((m >> 53) % 100) / 100,
                "expected_date_of_next_order": iso(self.now_us + (1 + (m >> 7) % 89) * 86_400 * US) if orders else None,
                "ranked_channel_affinity": ["email", "sms", "push"]}
        return attrs

    def _subscriptions(self, i: int, double_optin: bool, phone: str | None, consented: str) -> dict:
        at = self.suppressed_at[i]
        sup = [] if at < 0 else [{"reason": self.field(i, f"{SUPPRESSION}.reason"), "timestamp": iso(at)}]
        first = self.first_suppressed.get(i)
        if sup and first is not None:  # suppressed again: the first item, then the latest (filters read the latest)
            later = "SPAM_COMPLAINT" if sup[0]["reason"] != "SPAM_COMPLAINT" else "USER_SUPPRESSED"
            sup = [{**sup[0], "timestamp": iso(first)}, {"reason": later, "timestamp": iso(at)}]
        lsup = self.list_suppression(i)
        return {
            "email": {"marketing": {
                "can_receive_email_marketing": not sup, "consent": "UNSUBSCRIBED" if sup else "SUBSCRIBED",
                "consent_timestamp": consented, "last_updated": iso(at) if sup else consented,
                "method": "PREFERENCE_PAGE" if sup else "FORM", "method_detail": "", "custom_method_detail": None,
                "double_optin": double_optin, "suppression": sup,
                "list_suppressions": [] if lsup is None else [{**lsup, "timestamp": iso(lsup["timestamp"])}]}},
            "sms": {"marketing": {"can_receive_sms_marketing": phone is not None,
                                  "consent": "SUBSCRIBED" if phone else "NEVER_SUBSCRIBED",
                                  "consent_timestamp": consented if phone else None,
                                  "method": "TEXT" if phone else None, "method_detail": None,
                                  "last_updated": consented if phone else None},
                    "transactional": {"can_receive_sms_transactional": False, "consent": "NEVER_SUBSCRIBED",
                                      "consent_timestamp": None, "method": None, "method_detail": None,
                                      "last_updated": None}},
            "mobile_push": {"marketing": {"can_receive_push_marketing": False, "consent": "NEVER_SUBSCRIBED",
                                          "consent_timestamp": None}},
        }

    def render(self, i: int, base: str, fields: dict[str, list[str]], extra: tuple[str, ...] = (),
               joined_us: int | None = None) -> dict:
        """The JSON:API profile object (segment members carry joined_group_at)."""
        attrs = self._attributes(i, fields.get("profile"), extra, joined_us)
        return resource(base, "profile", self.ids[i], attrs, _rels(joined_us is not None))

    def _attributes(self, i: int, wanted: list[str] | tuple[str, ...] | None, extra: tuple[str, ...],
                    joined_us: int | None) -> dict:
        attrs = self.attributes(i, extra)
        if joined_us is not None:
            attrs["joined_group_at"] = iso(joined_us)
        return sparse(attrs, None if wanted is None else list(wanted))

    def encoded(self, i: int, base: str, fields: dict[str, list[str]], extra: tuple[str, ...] = (),
                joined_us: int | None = None) -> Raw:
        """`render` as JSON text, cached: paging re-serves the same profiles and building one costs ~100 µs."""
        wanted = fields.get("profile")
        return self._encoded(i, self.version[i], self.updated[i], self.suppressed_at[i], base,
                             None if wanted is None else tuple(wanted), extra, joined_us)

    def _encode(self, i: int, version: int, updated: int, suppressed_at: int, base: str, wanted: tuple[str, ...] | None,
                extra: tuple[str, ...], joined_us: int | None) -> Raw:
        # version, updated and suppressed_at only key the cache; the text is built from the current row.
        head, tail = _shell(base, joined_us is not None)
        id_ = self.ids[i]
        attrs = encode(self._attributes(i, wanted, extra, joined_us))
        return Raw(f"{head.replace(_MARK, id_)},\"attributes\":{attrs}{tail.replace(_MARK, id_)}")


def _rels(member: bool) -> dict:
    """Relationship names of a profile object: links only, no data (segment members lack conversations)."""
    rels: dict = {"lists": None, "segments": None, "push-tokens": None}
    if not member:
        rels["conversations"] = None
    return rels


# Stands for the id in a cached shell; JSON-encodes to \u0000, which no ULID contains.
_MARK = "\\u0000"


@lru_cache(maxsize=64)
def _shell(base: str, member: bool) -> tuple[str, str]:
    """A profile object's JSON without attributes, split where they go; the id is `_MARK` (saves ~25 µs)."""
    text = encode(resource(base, "profile", "\x00", None, _rels(member)))
    head, sep, tail = text.partition(',"relationships":')
    return head, sep + tail


class SegmentMembers:
    """Members of one segment, as a Table for /api/segments/{id}/profiles."""

    def __init__(self, profiles: Profiles, joined: dict[int, int]) -> None:
        self.profiles, self.joined = profiles, joined
        self._orders: dict[str, list[Key]] = {}
        self._stamp = -1

    def ordered(self, field: str) -> list[Key]:
        """(sort value, id) ascending over current members."""
        if self._stamp != self.profiles.generation:
            self._orders.clear()
            self._stamp = self.profiles.generation
        if field not in self._orders:
            ids = self.profiles.ids
            live = [i for i in self.joined if ids[i] in self.profiles.index]
            key = (lambda i: self.joined[i]) if field == "joined_group_at" else (lambda i: self.getter(i)(field))
            self._orders[field] = sorted((sort_key(key(i), KINDS.get(field, "string")), ids[i]) for i in live)
        return self._orders[field]

    def handle(self, id_: str) -> int | None:
        """Profile index if a member."""
        i = self.profiles.index.get(id_)
        return i if i is not None and i in self.joined else None

    def getter(self, i: int) -> Callable[[str], object]:
        """Profile fields plus joined_group_at and profile_id."""
        def get(name: str) -> object:
            if name == "joined_group_at":
                return self.joined[i]
            if name == "profile_id":
                return self.profiles.ids[i]
            return self.profiles.field(i, name)
        return get

