"""The rows a correct sync lands, built from the simulator's own answers without any engine code.

Each resource's records are read from the simulator in process (its API handler, no socket) and turned
into rows by the rules README.md promises: attributes become columns, objects are flattened with `_` up
to three levels, deeper objects and arrays are JSON, a to-one relationship becomes `<rel>_id` and a
to-many one `<rel>_ids`. What a resource gets beyond that (partition, parent and included columns) is
listed in EXTRA_COLUMNS: the one place to extend when the spec gains a derived column.

`assert_rows_match` compares every landed column value with these rows and prints a readable diff.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from bisect import bisect_right
from functools import cache
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import yaml

from klaviyo_sim import Simulator
from klaviyo_sim.jsonapi import dumps
from tests.klx_testing import ROOT

FLATTEN_DEPTH = 3  # README: nested objects are flattened up to three levels
LOAD_COLUMNS = ("received_at", "uuid_ts", "context_sources_job_run_id", "context_sources_task_run_id")
BASE = "http://truth.invalid"  # links in in-process answers point here; no request ever goes to it
PROFILE_FIELDS = {"additional-fields[profile]": "subscriptions,predictive_analytics"}
# What a stream's records are read from when it keeps only some (its events count all of them).
READS: dict[str, str] = {}  # resource -> the resource whose records it reads, when it reads more than it keeps
# Endpoints without page[size] serve a fixed page (API-NOTES §3.7: metrics 200).
FIXED_PAGE_SIZES = {"metrics": 200}
ARCHIVED = tuple({"filter": f"equals(archived,{a})"} for a in ("false", "true"))


@dataclass(frozen=True, slots=True)
class Source:
    """Where the simulator serves a resource's records: one request sequence per partition (and parent)."""

    path: str
    params: dict[str, str] = field(default_factory=dict)
    partitions: tuple[dict[str, str], ...] = ({},)
    parent: str | None = None  # the resource whose records' ids fill {id} in `path`


# Tag ids are served only with include=tags (as on live Klaviyo), so the sources ask for them.
TAGS = {"include": "tags"}
SOURCES: dict[str, Source] = {
    "campaigns": Source("/api/campaigns", {"include": "campaign-messages,tags"}, tuple(
        {"filter": f"equals(messages.channel,'{c}'),equals(archived,{a})"}
        for c in ("email", "sms", "mobile_push") for a in ("false", "true"))),
    "email_templates": Source("/api/templates"),
    "events": Source("/api/events", {"page[size]": "1000", "include": "attributions,metric,profile"}),
    "flows": Source("/api/flows", {"include": "flow-actions,tags"}, partitions=ARCHIVED),
    # Two reads (spec partitions[].cursors): suppressed profiles by their suppression's timestamp, and
    # profiles changed since the last run, which on a first sync is none (modelled by a bound nothing passes).
    "global_exclusions": Source("/api/profiles", {"additional-fields[profile]": "subscriptions"}, (
        {"filter": "greater-than(subscriptions.email.marketing.suppression.timestamp,1970-01-01T00:00:00+00:00)",
         "sort": "subscriptions.email.marketing.suppression.timestamp"},
        {"filter": "greater-than(updated,2999-01-01T00:00:00+00:00)", "sort": "updated"})),
    "lists": Source("/api/lists", TAGS),
    "metrics": Source("/api/metrics"),
    "profiles": Source("/api/profiles", PROFILE_FIELDS),
    "segments": Source("/api/segments", TAGS),
    "segments_profiles": Source("/api/segments/{id}/profiles", PROFILE_FIELDS, parent="segments"),
}


@dataclass(frozen=True, slots=True)
class Fetched:
    """One JSON:API resource object as the simulator served it, with the request it came from."""

    obj: dict[str, Any]
    parent_id: str | None
    included: dict[tuple[str, str], dict[str, Any]]
    sequence: tuple[str | None, int]  # (parent id, partition index): the request sequence that served it


class Truth:
    """The simulator's records at one moment; fetched once per resource."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._fetched: dict[str, dict[tuple, Fetched]] = {}
        self._sequences: dict[str, list[tuple[str | None, int]]] = {}

    def fetched(self, resource: str) -> dict[tuple, Fetched]:
        """Every record of `resource` the simulator serves, by primary key."""
        if resource not in self._fetched:
            self._fetched[resource] = self._fetch(resource)
        return self._fetched[resource]

    def sequences(self, resource: str) -> list[tuple[str | None, int]]:
        """Every request sequence of `resource` (parent id, partition index), empty ones included."""
        self.fetched(resource)
        return self._sequences[resource]

    def attributes(self, resource: str, id_: str) -> dict[str, Any]:
        """The attributes of one record of another resource (for included columns)."""
        return self.fetched(resource)[(id_,)].obj["attributes"]

    def _fetch(self, resource: str) -> dict[tuple, Fetched]:
        source = SOURCES[resource]
        parents = [k[0] for k in self.fetched(source.parent)] if source.parent else [None]
        out: dict[tuple, Fetched] = {}
        self._sequences[resource] = []
        for parent_id in parents:
            path = source.path.replace("{id}", parent_id or "")
            for index, partition in enumerate(source.partitions):
                self._sequences[resource].append((parent_id, index))
                for body in self._pages(path, {**source.params, **partition}):
                    included = {(r["type"], r["id"]): r for r in body.get("included", [])}
                    for obj in body["data"]:
                        key = (parent_id, obj["id"]) if parent_id else (obj["id"],)
                        assert key not in out, f"the simulator served {resource} {key} twice"
                        out[key] = Fetched(obj, parent_id, included, (parent_id, index))
        return out

    def _pages(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        headers = {"authorization": f"Klaviyo-API-Key {self.sim.api_key}", "revision": "2026-07-15"}
        query, bodies = urlencode(params), []
        while True:
            reply = self.sim.handle_api("GET", path, query, headers, BASE)
            assert reply.status == 200, f"the simulator refused GET {path}?{query}: {reply.body}"
            body = json.loads(dumps(reply.body))  # the bytes a client would read
            bodies.append(body)
            next_url = body["links"]["next"]
            if not next_url:
                return bodies
            query = urlsplit(next_url).query


def tag_columns(record: Fetched, truth: Truth) -> dict[str, Any]:
    """tag_names: the names of the record's tags, in relationship order, from the included tags."""
    tags = record.obj["relationships"]["tags"]["data"]
    return {"tag_names": [record.included[(t["type"], t["id"])]["attributes"]["name"] for t in tags]}


def campaign_columns(record: Fetched, truth: Truth) -> dict[str, Any]:
    """The channel partition column and RudderStack's sender of the campaign's (one) message."""
    (message,) = record.obj["relationships"]["campaign-messages"]["data"]
    definition = record.included[(message["type"], message["id"])]["attributes"]["definition"]
    content = definition["content"]
    sender = {f"{field}_0": content.get(field) for field in ("from_email", "from_label", "reply_to_email")}
    return {"channel": definition["channel"], **sender, **tag_columns(record, truth)}


def event_columns(record: Fetched, truth: Truth) -> dict[str, Any]:
    """metric_name as /api/metrics lists it (null for a metric it no longer lists), the email of the
    event's profile, and RudderStack's flow/campaign columns: a flow sets $flow and its message as $message."""
    metric = record.obj["relationships"]["metric"]["data"]
    known = truth.fetched("metrics").get((metric["id"],))
    profile = record.included.get(("profile", record.obj["relationships"]["profile"]["data"]["id"]))
    props = record.obj["attributes"]["event_properties"]
    flow = props.get("$flow")
    return {"metric_name": known.obj["attributes"]["name"] if known else None,
            "profile_email": profile["attributes"]["email"] if profile else None,  # a deleted profile is not included
            "flow_id": flow, "flow_message_id": props.get("$message") if flow else None,
            "campaign_id": None if flow else props.get("$message")}


def exclusion_columns(record: Fetched, truth: Truth) -> dict[str, Any]:
    """The later of the profile's `updated` and its newest suppression: a further suppression leaves `updated`."""
    attributes = record.obj["attributes"]
    stamps = [s["timestamp"] for s in attributes["subscriptions"]["email"]["marketing"]["suppression"]]
    return {"updated_or_suppressed": max([attributes["updated"], *stamps])}


def segment_member_columns(record: Fetched, truth: Truth) -> dict[str, Any]:
    """The parent key: which segment this profile was listed under."""
    return {"segment_id": record.parent_id}


# Columns beyond attributes and relationships, from the simulator's truth. Add a derived column here.
EXTRA_COLUMNS: dict[str, Callable[[Fetched, Truth], dict[str, Any]]] = {
    "campaigns": campaign_columns,
    "events": event_columns,
    "flows": tag_columns,
    "global_exclusions": exclusion_columns,
    "lists": tag_columns,
    "segments": tag_columns,
    "segments_profiles": segment_member_columns,
}


def snake(name: str) -> str:
    """README: column names are snake_case (`firstName` -> first_name, `$value` -> value)."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return ("_" + text if text[:1].isdigit() else text) or "_"


@cache
def column_of(path: tuple[str, ...]) -> str:
    """The column a source path lands in: its snake_case parts joined by _ (cached: rows repeat their paths)."""
    return "_".join(snake(p) for p in path)


def flatten(value: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) leaves: objects are opened up to FLATTEN_DEPTH keys deep, anything else is a leaf."""
    if isinstance(value, dict) and len(path) < FLATTEN_DEPTH:
        return [leaf for key, inner in value.items() for leaf in flatten(inner, path + (key,))]
    return [(path, value)]


def row_of(record: Fetched, extra: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    """One record as source path -> value: id, attributes, relationship ids, extra columns."""
    obj = record.obj
    top: dict[str, Any] = {"id": obj["id"], **obj.get("attributes", {})}
    for name, relationship in obj.get("relationships", {}).items():
        if "data" not in relationship:
            continue  # links only: no column
        data = relationship["data"]
        if isinstance(data, list):
            top[f"{name}_ids"] = [d["id"] for d in data]
        else:
            top[f"{name}_id"] = None if data is None else data["id"]
    top.update(extra)
    return dict(flatten(top, ()))


def truth_keys(sim: Simulator, resource: str, start_date: str) -> list[tuple]:
    """The primary keys of the simulator's truth for `resource`."""
    return [tuple(t[k] for k in ("segment_id", "id") if k in t) for t in sim.truth(resource, start_date)]


def expected_figures(sim: Simulator, resource: str, start_date: str, run_start: datetime | None = None) -> tuple[int, int, int]:
    """(events, rows, pages) a first sync of `resource` from `start_date` reports in its summary.

    Events are the records the API returned (global exclusions read suppressed profiles only), rows the records
    kept, pages one per `page_size` records of each request sequence, and one for an empty sequence. A stream
    with a cursor `slice` reads one sequence per window of that step from start_date, the last one open
    from the last window start before `run_start` (default: the simulator's now).
    """
    truth = Truth(sim)
    fetched = truth.fetched(resource)
    read = set(truth_keys(sim, READS.get(resource, resource), start_date))
    size = page_size(resource)
    step = slice_step(resource)
    if step is None:
        per_sequence = Counter(f.sequence for k, f in fetched.items() if k in read)
        sequences = truth.sequences(resource)
    else:
        starts = [datetime.fromisoformat(start_date).replace(tzinfo=timezone.utc)]
        while starts[-1] + step < (run_start or sim.now):
            starts.append(starts[-1] + step)
        field = yaml_stream(resource)["cursor"]["field"]
        per_sequence = Counter(
            bisect_right(starts, datetime.fromisoformat(f.obj["attributes"][field])) - 1 for k, f in fetched.items() if k in read
        )
        sequences = range(len(starts))
    pages = sum(max(1, -(-per_sequence[s] // size)) for s in sequences)
    return sum(per_sequence.values()), len(truth_keys(sim, resource, start_date)), pages


@cache
def declared_columns() -> frozenset[str]:
    """The derived and include columns of every stream in specs/klaviyo.yaml: each has a column even when null."""
    streams = yaml.safe_load((ROOT / "specs" / "klaviyo.yaml").read_text())["streams"]
    return frozenset(
        [column for stream in streams.values() for column in stream.get("derived") or {}]
        + [column for stream in streams.values() for mapping in (stream.get("include") or {}).values() for column in mapping.values()]
    )


def yaml_stream(resource: str) -> dict[str, Any]:
    """The resource's stream in specs/klaviyo.yaml, as written."""
    return yaml.safe_load((ROOT / "specs" / "klaviyo.yaml").read_text())["streams"][resource]


def slice_step(resource: str) -> timedelta | None:
    """The stream's cursor `slice` step (specs/klaviyo.yaml writes it in days), or None."""
    step = (yaml_stream(resource).get("cursor") or {}).get("slice")
    if step is None:
        return None
    assert re.fullmatch(r"\d+d", step), f"{resource}: slice {step!r} is not written in days; extend slice_step"
    return timedelta(days=int(step[:-1]))


def page_size(resource: str) -> int:
    """Records per page klx asks for (specs/klaviyo.yaml), or the API's fixed size where it takes none."""
    streams = yaml.safe_load((ROOT / "specs" / "klaviyo.yaml").read_text())["streams"]
    stream = streams[resource]
    size = stream.get("page_size") or streams.get(stream.get("extends"), {}).get("page_size")
    return size or FIXED_PAGE_SIZES[resource]


def expected_rows(sim: Simulator, resource: str, start_date: str) -> dict[tuple, dict[str, Any]]:
    """Key -> {column: source value} for every record a correct sync of `resource` lands now."""
    truth = Truth(sim)
    fetched = truth.fetched(resource)
    wanted = truth_keys(sim, resource, start_date)
    missing = [k for k in wanted if k not in fetched]
    assert not missing, f"the simulator's truth names {resource} {missing[:3]} that its API does not serve"
    extra = EXTRA_COLUMNS.get(resource, lambda r, t: {})
    paths: dict[str, tuple[str, ...]] = {}
    out = {}
    for key in wanted:
        row = {}
        for path, value in row_of(fetched[key], extra(fetched[key], truth)).items():
            column = column_of(path)
            # Two source paths with one snake_case name would get a _2 suffix in first-seen order;
            # the simulator has none, so this builder does not model it.
            assert paths.setdefault(column, path) == path, f"{resource}: {path} and {paths[column]} both map to {column}"
            row[column] = value
        out[key] = row
    return out


def same(landed: Any, source: Any) -> bool:
    """Whether a warehouse value is the source value as README promises it lands."""
    if source is None or landed is None:
        return source is None and landed is None
    if isinstance(source, (dict, list)):  # arrays and deep objects are JSON text
        return isinstance(landed, str) and json.loads(landed) == source
    if isinstance(landed, datetime):  # ISO-8601 strings land as timestamps, the same instant
        return isinstance(source, str) and datetime.fromisoformat(source) == landed
    if isinstance(source, str):
        return landed == source
    if isinstance(landed, str):  # a column widened to TEXT holds other scalars as JSON text
        decoded = json.loads(landed)
        return decoded == source and type(decoded) is type(source)
    if isinstance(source, bool) or isinstance(landed, bool):
        return landed is source
    return landed == source  # BIGINT widened to DOUBLE still compares equal


def assert_rows_match(table: str, landed: list[dict[str, Any]], expected: dict[tuple, dict[str, Any]],
                      key: Callable[[dict[str, Any]], tuple]) -> None:
    """Every landed row equals its expected row in every column; a readable diff otherwise."""
    by_key = {key(r): r for r in landed}
    assert len(by_key) == len(landed), f"{table}: duplicate keys"
    assert sorted(by_key) == sorted(expected), (
        f"{table}: keys differ; missing {sorted(set(expected) - set(by_key))[:5]}, "
        f"unexpected {sorted(set(by_key) - set(expected))[:5]}")
    columns = set(landed[0]) - set(LOAD_COLUMNS) if landed else set()
    # A column for every path with a value that is not null (README: a field null in every record has none),
    # and for every column the spec declares (derived and include columns), null or not.
    wanted = {c for row in expected.values() for c, value in row.items() if value is not None or c in declared_columns()}
    assert columns == wanted, (
        f"{table}: columns differ; missing {sorted(wanted - columns)}, unexpected {sorted(columns - wanted)}")
    wrong: Counter[str] = Counter()
    examples: list[str] = []
    for k, row in sorted(by_key.items()):
        for column in sorted(columns):
            if not same(row[column], expected[k].get(column)):
                wrong[column] += 1
                if wrong[column] <= 2:
                    examples.append(f"  {k} {column}: landed {row[column]!r}, expected {expected[k].get(column)!r}")
    if wrong:
        summary = ", ".join(f"{c} ({n} of {len(landed)} rows)" for c, n in wrong.most_common())
        raise AssertionError(f"{table}: wrong values in {summary}\n" + "\n".join(examples[:20]))


def assert_load_columns(table: str, landed: list[dict[str, Any]], job_run_ids: set[str]) -> None:
    """Every row carries the load columns, and its job run id is one of the runs that wrote the table."""
    for row in landed:
        assert row["context_sources_job_run_id"] in job_run_ids, f"{table}: {row['id']} has an unknown job run id"
        assert row["context_sources_task_run_id"], f"{table}: {row['id']} has no task run id"
        assert isinstance(row["received_at"], datetime) and isinstance(row["uuid_ts"], datetime), f"{table}: {row['id']}"

