"""Datetime filters return every record in range and nothing else: the expected ids come from the truth."""

from __future__ import annotations

import operator
from collections import Counter
from datetime import datetime

import pytest

from klaviyo_sim.testing import follow

OPS = {"greater-or-equal": operator.ge, "greater-than": operator.gt, "less-or-equal": operator.le, "less-than": operator.lt}


def matching(truth: list[dict], conditions: list[tuple[str, datetime]]) -> list[str]:
    """Ids of truth records whose cursor meets every (operator, bound), in (cursor, id) order."""
    chosen = [t for t in truth if all(OPS[op](datetime.fromisoformat(t["cursor"]), bound) for op, bound in conditions)]
    return [t["id"] for t in sorted(chosen, key=lambda t: (datetime.fromisoformat(t["cursor"]), t["id"]))]


def served(sim, path: str, field: str, conditions: list[tuple[str, datetime]], params: dict) -> list[str]:
    """Ids returned over every page of a filtered request, in order."""
    flt = ",".join(f"{op}({field},{bound.isoformat()})" for op, bound in conditions)
    return [r["id"] for body in follow(sim, path, {**params, "filter": flt}) for r in body["data"]]


def busiest_second(truth: list[dict]) -> datetime:
    """The cursor value shared by the most records: a bound there shows whether it is inclusive."""
    return datetime.fromisoformat(Counter(t["cursor"] for t in truth).most_common(1)[0][0])


@pytest.mark.parametrize("ops", [("greater-or-equal", "less-than"), ("greater-than", "less-or-equal"),
                                 ("greater-or-equal", "less-or-equal"), ("greater-than", "less-than")])
def test_event_datetime_filters_return_exactly_the_events_in_range(sim, ops: tuple[str, str]) -> None:
    truth = sim.truth("events")
    tie = busiest_second(truth)  # the 1,100-event tie cluster: several 250-event pages share this second
    seconds = sorted({datetime.fromisoformat(t["cursor"]) for t in truth})
    later = seconds[seconds.index(tie) + 40]
    conditions = [(ops[0], tie), (ops[1], later)]
    expected = matching(truth, conditions)
    assert len(expected) >= 39  # 39 seconds strictly inside; greater-or-equal adds the 1,100 tied events
    assert served(sim, "/api/events", "datetime", conditions, {"page[size]": "250", "sort": "datetime"}) == expected


@pytest.mark.parametrize("op", ["greater-than", "less-than"])
def test_profile_updated_filters_return_exactly_the_profiles_in_range(sim, op: str) -> None:
    truth = sim.truth("profiles")
    tie = busiest_second(truth)  # the 130-profile tie cluster, larger than a 100-profile page
    expected = matching(truth, [(op, tie)])
    got = served(sim, "/api/profiles", "updated", [(op, tie)], {"page[size]": "100", "sort": "updated"})
    assert got == expected


@pytest.mark.parametrize(("resource", "path", "op"), [
    ("lists", "/api/lists", "greater-than"),
    ("segments", "/api/segments", "greater-than"),
    ("email_templates", "/api/templates", "greater-or-equal"),
    ("email_templates", "/api/templates", "less-than"),
])
def test_updated_filters_on_small_resources_return_exactly_the_records_in_range(sim, resource: str, path: str, op: str) -> None:
    truth = sim.truth(resource)
    middle = sorted(datetime.fromisoformat(t["cursor"]) for t in truth)[len(truth) // 2]  # a record's own cursor
    expected = matching(truth, [(op, middle)])
    got = served(sim, path, "updated", [(op, middle)], {"page[size]": "3", "sort": "updated"})
    assert got == expected
