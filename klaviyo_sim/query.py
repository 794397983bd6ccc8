"""GET /api/... handling: parameter checks, filter/sort/page walk, rendering, `included` (API-NOTES §1.3–1.6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from klaviyo_sim import cursors, errors
from klaviyo_sim.data import KINDS as SMALL_KINDS
from klaviyo_sim.filters import And, Cond, bounds, check, compile_predicate, conditions, parse
from klaviyo_sim.jsonapi import US, Raw, resource, sparse
from klaviyo_sim.profiles import KINDS as PROFILE_KINDS
from klaviyo_sim.specdata import Operation, match_path
from klaviyo_sim.store import Store
from klaviyo_sim.tables import sort_key, walk


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """How one simulated collection behaves beyond what the spec's parameter table says."""

    type: str
    kinds: dict[str, str] = field(default_factory=dict)
    default_sort: str = "id"
    fixed_page: int | None = None
    archived: bool = False
    channel_required: bool = False


ENDPOINTS = {
    "/api/campaigns": Endpoint(type="campaign", kinds=SMALL_KINDS["campaign"], archived=True, channel_required=True),
    "/api/templates": Endpoint(type="template", kinds=SMALL_KINDS["template"]),
    "/api/events": Endpoint(type="event", kinds={"datetime": "datetime", "timestamp": "integer"},
                            default_sort="datetime"),
    "/api/flows": Endpoint(type="flow", kinds=SMALL_KINDS["flow"], archived=True),
    "/api/lists": Endpoint(type="list", kinds=SMALL_KINDS["list"]),
    # Metrics have no page[size]; the page is fixed at 200 (API-NOTES §1.4).
    "/api/metrics": Endpoint(type="metric", fixed_page=200),
    "/api/segments": Endpoint(type="segment", kinds=SMALL_KINDS["segment"]),
    "/api/segments/{id}/profiles": Endpoint(type="member", kinds=PROFILE_KINDS),
    "/api/profiles": Endpoint(type="profile", kinds=PROFILE_KINDS),
    "/api/tags": Endpoint(type="tag"),
    "/api/accounts": Endpoint(type="account", fixed_page=100),
}
_LIST_PARAMS = ("include",)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """Status, JSON body (or its encoded bytes, when served from the response cache) and extra headers for one request."""

    status: int
    body: dict | bytes
    headers: tuple[tuple[str, str], ...] = ()


def route(path: str) -> tuple[Operation, Endpoint, dict[str, str]]:
    """The spec operation and simulated endpoint for a request path, else 404."""
    found = match_path(path)
    if found is None or found[0].path not in ENDPOINTS:
        raise errors.not_found()
    return found[0], ENDPOINTS[found[0].path], found[1]


def _checked_list(op: Operation, name: str, raw: str) -> list[str]:
    items = raw.split(",") if raw else []
    enum = op.params[name].enum or ()
    for item in items:
        if item not in enum:
            if name == "include":
                raise errors.invalid(f"'{item}' is not an allowed include parameter for this resource.",
                                     parameter="include")
            raise errors.invalid(f"'{item}' is not a valid value for {name}.", parameter=name)
    return items


def _page_size(op: Operation, ep: Endpoint, values: dict[str, str]) -> int:
    declared = op.param("page[size]")
    if declared is None:
        return ep.fixed_page or 100
    if "page[size]" not in values:
        return declared.default or 20
    try:
        size = int(values["page[size]"])
    except ValueError:
        size = -1
    if not (declared.minimum or 1) <= size <= (declared.maximum or 100):
        raise errors.invalid(f"Page size must be an integer between {declared.minimum} and {declared.maximum}.",
                             parameter="page[size]")
    return size


def _filter(op: Operation, ep: Endpoint, raw: str | None) -> Cond | And | None:
    param = op.param("filter")
    if raw is None or raw == "":
        node = None
        if param is not None and param.required:
            raise errors.invalid("The 'filter' query parameter is required for this resource.", parameter="filter")
    else:
        node = parse(raw)
        check(node, op.filters, ep.kinds)
    conds = conditions(node) if node is not None else []
    if ep.channel_required and not any(c.field == "messages.channel" and c.op == "equals" for c in conds):
        # Klaviyo requires exactly one channel per campaigns request (API-NOTES §3.1).
        raise errors.invalid_filter("filter must contain equals(messages.channel,...)")
    if ep.archived and not any(c.field == "archived" for c in conds):
        # Archived campaigns/flows only come back when asked for (API-NOTES §3.1, §3.4).
        implicit = Cond("equals", "archived", False)
        node = implicit if node is None else And((node, implicit))
    return node


class Query:
    """One validated collection request against the store."""

    def __init__(self, store: Store, path: str, raw_query: str, base: str) -> None:
        self.store, self.path, self.raw_query, self.base = store, path, raw_query, base
        self.op, self.ep, bound = route(path)
        self.params = parse_qsl(raw_query, keep_blank_values=True)
        values = dict(self.params)
        for name, _ in self.params:
            if name not in self.op.params:
                if name == "page[size]":
                    raise errors.unsupported_page_size(self.ep.type)
                raise errors.invalid(f"'{name}' is not a valid query parameter for this resource.", parameter=name)
        self.size = _page_size(self.op, self.ep, values)
        self.fields = {n[7:-1]: _checked_list(self.op, n, v) for n, v in values.items() if n.startswith("fields[")}
        extra = [_checked_list(self.op, n, v) for n, v in values.items() if n.startswith("additional-fields[")]
        self.extra = tuple(x for xs in extra for x in xs)
        self.includes = _checked_list(self.op, "include", values["include"]) if "include" in values else None
        sort = values.get("sort")
        if sort is not None and sort not in (self.op.param("sort").enum or ()):
            raise errors.invalid(f"'{sort}' is not a valid sort field for this resource.", parameter="sort")
        self.desc = bool(sort and sort.startswith("-"))
        self.field = sort.lstrip("-") if sort else self.ep.default_sort
        if self.ep.type == "event":
            self.field = "datetime"  # datetime, timestamp and id orders coincide for events
        self.node = _filter(self.op, self.ep, values.get("filter"))
        self.cursor = values.get("page[cursor]")
        if self.ep.type == "member":
            members = store.members.get(bound["id"])
            if members is None:
                raise errors.not_found(f"A segment with id {bound['id']} does not exist.")
            self.table = members
        else:
            self.table = store.table(self.ep.type)

    def run(self) -> Reply:
        """Walk one page and build the envelope."""
        kind = self.ep.kinds.get(self.field, "string")
        low, high = bounds(self.node, self.field) if kind in ("datetime", "integer") else (None, None)
        if self.ep.type == "event":
            tlow, thigh = bounds(self.node, "timestamp")
            low = max(x for x in (low, None if tlow is None else tlow * US) if x is not None) \
                if low is not None or tlow is not None else None
            high = min(x for x in (high, None if thigh is None else thigh * US + US - 1) if x is not None) \
                if high is not None or thigh is not None else None
        direction, after = cursors.decode(self.cursor, self.field) if self.cursor else ("next", None)
        match = compile_predicate(self.node)
        with self.store.lock:
            backwards = direction == "prev"
            got = list(walk(self.table, self.field, self.desc != backwards, after, low, high, match, self.size + 1))
            more = len(got) > self.size
            got = got[:self.size]
            if backwards:
                got.reverse()
            has_next, has_prev = (True, more) if backwards else (more, after is not None)
            if self.includes is None and self.ep.type in ("profile", "member"):
                data: list = [self.encoded(h) for h in got]
                included = None
            else:
                data = [self.render(h) for h in got]
                included = self.included(data, got) if self.includes is not None else None
            # Only the first and last records' keys go into the prev/next cursors.
            keys = [(sort_key(self.table.getter(h)(self.field), kind), self.table.getter(h)("id"))
                    for h in (got[:1] + got[-1:] if got else [])]
        links = {"self": f"{self.base}{self.path}" + (f"?{self.raw_query}" if self.raw_query else ""),
                 "next": None, "prev": None}
        if has_next and keys:
            links["next"] = cursors.page_url(self.base, self.path, self.params,
                                             cursors.encode("next", self.field, keys[-1]))
        if has_prev and keys:
            links["prev"] = cursors.page_url(self.base, self.path, self.params,
                                             cursors.encode("prev", self.field, keys[0]))
        body: dict = {"data": data, "links": links}
        if included is not None:
            body["included"] = included
        return Reply(status=200, body=body)

    def render(self, handle: object) -> dict:
        """One primary resource object."""
        if self.ep.type == "profile":
            return self.store.profiles.render(handle, self.base, self.fields, self.extra)
        if self.ep.type == "member":
            return self.store.profiles.render(handle, self.base, self.fields, self.extra,
                                              joined_us=self.table.joined[handle])
        if self.ep.type == "event":
            return self.table.render(handle, self.base, self.fields)
        return self.table.render(handle, self.base, self.fields, self.includes)

    def encoded(self, handle: int) -> Raw:
        """One profile or segment member as cached JSON text (profiles dominate sync traffic)."""
        joined = self.table.joined[handle] if self.ep.type == "member" else None
        return self.store.profiles.encoded(handle, self.base, self.fields, self.extra, joined_us=joined)

    def included(self, data: list[dict], handles: list) -> list[dict]:
        """Related resources named by `include`, each once."""
        seen: dict[tuple[str, str], dict] = {}
        small = self.store.small
        for obj, handle in zip(data, handles):
            for name in self.includes or []:
                rel = obj.get("relationships", {}).get(name, {}).get("data")
                for ref in rel if isinstance(rel, list) else [rel] if rel else []:
                    key = (ref["type"], ref["id"])
                    if key in seen:
                        continue
                    if ref["type"] == "attribution":
                        seen[key] = self.store.events.attribution(self.base, *handle, ref["id"])
                    else:
                        found = self._related(small, *key)
                        if found is not None:
                            seen[key] = found
        return list(seen.values())

    def _related(self, small: object, type_: str, id_: str) -> dict | None:
        fields = self.fields.get(type_)
        if type_ == "campaign-message":
            msg = small.messages[id_]
            return resource(self.base, type_, id_, sparse(msg["attributes"], fields), msg["rels"])
        if type_ == "flow-action":
            act = small.flow_actions[id_]
            return resource(self.base, type_, id_, sparse(act["attributes"], fields), act["rels"])
        if type_ == "tag-group":
            return resource(self.base, type_, id_, sparse(small.tag_group["attributes"], fields), {"tags": None})
        if type_ == "profile":
            i = self.store.profiles.handle(id_)
            return None if i is None else self.store.profiles.render(i, self.base, self.fields)
        if type_ in small.tables:
            row = small.tables[type_].handle(id_)
            return None if row is None else small.tables[type_].render(row, self.base, self.fields)
        return None
