"""Each resource replayed offline from its cassette against https://a.klaviyo.com: exact rows, columns and state.

The runs come from cassettes/<resource>-<mode>.yaml; the expected rows are the ground truth of an unstarted
simulator of the same seed with the same mutation applied (tests/cassette_scenarios.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.expected_rows import assert_load_columns, assert_rows_match, expected_rows
from tests.cassette_scenarios import cases, cassette_name, mutation, run_times, simulator
from tests.klx_testing import ROOT, START_DATE, key_of, rows, sync, write_config

CURSOR = {"campaigns": "updated_at", "events": "datetime", "metrics": None, "segments_profiles": None}
# What a stream's cursor advances over: global exclusions read every profile, keep the suppressed ones.
READS = {"global_exclusions": "profiles"}
CASES = cases()


@pytest.fixture
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param


@pytest.fixture
def default_cassette_name(case: tuple[str, str]) -> str:
    return cassette_name(*case)


def partition_of(resource: str, row: dict[str, Any]) -> str:
    if resource == "campaigns":
        return f"channel={row['channel']},archived={str(row['archived']).lower()}"
    if resource == "flows":
        return f"archived={str(row['archived']).lower()}"
    return ""


@dataclass(frozen=True, slots=True)
class Replay:
    """What replaying one cassette did, and the simulator's truth before and after its change."""

    database: Path
    truths: list[list[dict]]  # the resource's truth (ids and cursors) at each run
    read: list[list[dict]]  # the truth of what the stream reads (its cursor moves over these)
    contents: list[dict[tuple, dict[str, Any]]]  # the expected rows at each run
    job_run_ids: set[str]
    last: datetime


def replay(resource: str, mode: str, tmp_path: Path) -> Replay:
    """Replay the cassette's runs; the truth (of this resource and of what it reads) before and after the change."""
    sim = simulator()
    database = tmp_path / "klx.duckdb"
    config = write_config(tmp_path, {resource: mode}, base_url=None, database=database)
    first, _ = run_times(sim)
    reads = READS.get(resource, resource)
    truths, read = [sim.truth(resource, START_DATE)], [sim.truth(reads, START_DATE)]
    contents = [expected_rows(sim, resource, START_DATE)]
    jobs = {sync(config, sim.api_key, now=first).job_run_id}
    last = first
    change = mutation(resource, mode)
    if change is not None:
        change.apply(sim)
        last = run_times(sim)[1]
        truths.append(sim.truth(resource, START_DATE))
        read.append(sim.truth(reads, START_DATE))
        contents.append(expected_rows(sim, resource, START_DATE))
        jobs.add(sync(config, sim.api_key, now=last).job_run_id)
    return Replay(database, truths, read, contents, jobs, last)


@pytest.mark.vcr
@pytest.mark.parametrize("case", CASES, ids=[cassette_name(*c) for c in CASES], indirect=True)
def test_cassette_replay_lands_exact_rows_columns_and_state(case: tuple[str, str], tmp_path: Path, golden) -> None:
    resource, mode = case
    played = replay(resource, mode, tmp_path)
    database, truths, read, last = played.database, played.truths, played.read, played.last
    table = f"kl_rudder_{resource}"
    landed = rows(database, f'select * from "{table}"')

    # Rows: full refresh holds exactly the latest truth; incremental keeps rows deleted since.
    expected = {key_of(resource, t): t for t in truths[-1]}
    if mode == "incremental":
        expected = {**{key_of(resource, t): t for t in truths[0]}, **expected}
    assert sorted(key_of(resource, r) for r in landed) == sorted(expected)
    cursor = CURSOR.get(resource, "updated")
    if cursor:
        assert {key_of(resource, r): r[cursor] for r in landed} == {k: datetime.fromisoformat(t["cursor"]) for k, t in expected.items()}

    # Every column of every row is the source's value: the latest content, or the last one read before deletion.
    content = played.contents[-1] if mode == "full_refresh" else {**played.contents[0], **played.contents[-1]}
    assert_rows_match(table, landed, content, lambda r: key_of(resource, r))
    assert_load_columns(table, landed, played.job_run_ids)

    # Columns, in order, with their types: reviewed as golden files.
    columns = rows(database, "select column_name, data_type from information_schema.columns where table_name = ? order by ordinal_position", [table])
    golden(f"columns/{cassette_name(resource, mode)}.txt", "\n".join(f"{c['column_name']} {c['data_type']}" for c in columns))

    # State: each partition's cursor is the newest one read, never past the last run's start.
    (row,) = rows(database, "select state from kl_klx_state where stream = ?", [resource])
    saved = json.loads(row["state"])["cursor"]
    if not cursor:
        assert saved == {}
        return
    newest: dict[str, datetime] = {}
    if resource == "global_exclusions":
        # Two reads with their own cursors (spec partitions[].cursors): suppressed profiles by their newest
        # suppression; changed profiles by `updated`, from the first run's start (nothing before it is re-read).
        stamps = [datetime.fromisoformat(s["timestamp"]) for content in played.contents for row in content.values()
                  for s in row["subscriptions_email_marketing"]["suppression"]]
        newest["read=suppressed"] = max(stamps)
        first = run_times(simulator())[0]
        changed = [datetime.fromisoformat(t["cursor"]) for t in read[-1] if datetime.fromisoformat(t["cursor"]) >= first - timedelta(seconds=1)]
        # A full refresh starts every read afresh: the changed read begins at that run's start and finds nothing.
        newest["read=changed"] = max([first, *changed]) if mode == "incremental" else last
    elif resource in READS:
        for truth in read:
            for t in truth:
                newest[""] = max(newest.get("", datetime.fromisoformat(t["cursor"])), datetime.fromisoformat(t["cursor"]))
    else:
        for r in landed:
            key = partition_of(resource, r)
            newest[key] = max(newest.get(key, r[cursor]), r[cursor])
    assert saved == {k: min(v, last).isoformat() for k, v in newest.items()}


def test_no_cassette_holds_a_credential() -> None:
    for path in (ROOT / "cassettes").glob("*.yaml"):
        text = path.read_text()
        assert "pk_" not in text, path
        assert "authorization" not in text.lower(), path
        assert "127.0.0.1" not in text, path
