"""Planning: each stream's first request, its lower bound, partitions and parents, from config + spec + state."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.config import Config
from engine.errors import ConfigError
from engine.plan import build_plan
from engine.spec import Spec

ROOT = Path(__file__).parent.parent
SPEC = Spec.from_yaml(ROOT / "specs" / "klaviyo.yaml")
NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


def config(tmp_path: Path, resources: str, start: str = "2024-01-01") -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(f"source:\n  api_key: pk_x\n  start_date: {start}\ndestination:\n  path: x.duckdb\n  table_prefix: kl_\nresources:\n{resources}")
    return Config.from_yaml(path, env={})


def plan_of(tmp_path: Path, resources: str, states: dict | None = None, **kw):
    return build_plan(config(tmp_path, resources), SPEC, states or {}, NOW, **kw)


def test_first_sync_starts_at_start_date_with_an_inclusive_bound(tmp_path: Path) -> None:
    (stream,) = plan_of(tmp_path, "  email_templates: incremental\n").streams
    (partition,) = stream.partitions
    assert stream.table == "kl_rudder_email_templates"
    assert partition.params == {"page[size]": "10", "filter": "greater-or-equal(updated,2024-01-01T00:00:00+00:00)", "sort": "updated"}


def test_greater_than_only_endpoints_move_the_bound_back_one_second(tmp_path: Path) -> None:
    state = {"profiles": {"cursor": {"": "2025-03-04T05:06:07+00:00"}}}
    (stream,) = plan_of(tmp_path, "  profiles: incremental\n", state).streams
    assert stream.partitions[0].params["filter"] == "greater-than(updated,2025-03-04T05:06:06+00:00)"


def test_saved_cursor_before_start_date_is_ignored(tmp_path: Path) -> None:
    state = {"lists": {"cursor": {"": "2020-01-01T00:00:00+00:00"}}}
    (stream,) = plan_of(tmp_path, "  lists: incremental\n", state).streams
    assert stream.partitions[0].lower_bound == datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_events_look_back_from_the_saved_cursor(tmp_path: Path) -> None:
    state = {"events": {"cursor": {"": "2025-06-10T12:00:00+00:00"}}}
    (stream,) = plan_of(tmp_path, "  events: incremental\n", state).streams
    assert stream.partitions[0].params["filter"] == (
        "and(greater-or-equal(datetime,2025-06-07T12:00:00+00:00),less-than(datetime,2025-07-07T12:00:00+00:00))")
    (stream,) = plan_of(tmp_path, "  events: {sync_mode: incremental, lookback_days: 0}\n", state).streams
    assert stream.partitions[0].params["filter"] == (
        "and(greater-or-equal(datetime,2025-06-10T12:00:00+00:00),less-than(datetime,2025-07-10T12:00:00+00:00))")


def test_campaigns_read_every_channel_and_archived_flag_with_their_own_cursor(tmp_path: Path) -> None:
    state = {"campaigns": {"cursor": {"channel=sms,archived=true": "2025-01-02T03:04:05.123456+00:00"}}}
    (stream,) = plan_of(tmp_path, "  campaigns: incremental\n", state).streams
    filters = {p.key: p.params["filter"] for p in stream.partitions}
    assert len(filters) == 6
    assert filters["channel=email,archived=false"] == (
        "and(greater-or-equal(updated_at,2024-01-01T00:00:00+00:00),equals(messages.channel,'email'),equals(archived,false))"
    )
    assert filters["channel=sms,archived=true"] == (
        "and(greater-or-equal(updated_at,2025-01-02T03:04:05+00:00),equals(messages.channel,'sms'),equals(archived,true))"
    )
    assert stream.partitions[0].columns == {"channel": "email"}


def test_full_refresh_ignores_saved_cursors(tmp_path: Path) -> None:
    state = {"segments": {"cursor": {"": "2025-01-01T00:00:00+00:00"}}}
    (stream,) = plan_of(tmp_path, "  segments: incremental\n", state, full_refresh=True).streams
    assert stream.mode == "full_refresh"
    assert stream.partitions[0].params["filter"] == "greater-than(updated,2023-12-31T23:59:59+00:00)"


def test_metrics_send_no_filter_sort_or_page_size(tmp_path: Path) -> None:
    (stream,) = plan_of(tmp_path, "  metrics: full_refresh\n").streams
    assert stream.partitions[0].params == {}


def test_child_stream_reads_its_parent_in_full_and_runs_after_it(tmp_path: Path) -> None:
    state = {"segments": {"cursor": {"": "2025-01-01T00:00:00+00:00"}}}
    plan = plan_of(tmp_path, "  segments_profiles: full_refresh\n  segments: incremental\n", state)
    assert [s.stream.name for s in plan.streams] == ["segments", "segments_profiles"]
    child = plan.streams[1]
    assert child.parent.stream.name == "segments"
    # parent.bounded: false in the Klaviyo spec: every segment, not only those updated since start_date.
    assert child.parent.partitions[0].params == {"include": "tags", "page[size]": "10", "sort": "updated"}


@pytest.mark.parametrize(
    ("resources", "message"),
    [("  metrics: incremental\n", "config.yaml:8: resources.metrics: incremental is not supported; use full_refresh"),
     ("  tags: full_refresh\n", "config.yaml:8: resources.tags: unknown resource; known: campaigns, email_templates, events, flows, "
      "global_exclusions, lists, metrics, profiles, segments, segments_profiles")],
)
def test_unsupported_selection_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resources: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "config.yaml"
    config(tmp_path, resources)
    cfg = Config.from_yaml(Path("config.yaml"), env={})
    with pytest.raises(ConfigError) as raised:
        build_plan(cfg, SPEC, {}, NOW)
    assert str(raised.value) == message
    assert path.exists()


def test_streams_option_must_name_selected_resources(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--streams: 'events' is not selected under resources"):
        plan_of(tmp_path, "  profiles: incremental\n", only=("events",))


def test_a_window_of_a_stream_the_api_cannot_bound_above_sends_only_its_start(tmp_path: Path) -> None:
    # /api/lists takes only greater-than on updated (cursor.upper: none): the run drops what is read from the end on.
    window = (datetime(2026, 6, 1, tzinfo=timezone.utc), datetime(2026, 6, 8, tzinfo=timezone.utc))
    lists, profiles = plan_of(tmp_path, "  lists: incremental\n  profiles: incremental\n", window=window).streams
    (partition,) = lists.partitions
    assert partition.params["filter"] == "greater-than(updated,2026-05-31T23:59:59+00:00)"
    assert (partition.until, partition.ordered) == (window[1], True)
    (partition,) = profiles.partitions
    assert partition.params["filter"] == "and(greater-than(updated,2026-05-31T23:59:59+00:00),less-than(updated,2026-06-08T00:00:00+00:00))"
    assert partition.until is None


def test_a_window_from_before_start_date_reads_from_start_date_and_one_ending_before_it_is_refused(tmp_path: Path) -> None:
    # Nothing before start_date is replicated, a backfill included (klx run --start 1960-01-01 read from 1960).
    window = (datetime(1960, 1, 1, tzinfo=timezone.utc), datetime(2024, 2, 1, tzinfo=timezone.utc))
    (profiles,) = plan_of(tmp_path, "  profiles: incremental\n", window=window).streams
    assert profiles.partitions[0].params["filter"] == "and(greater-than(updated,2023-12-31T23:59:59+00:00),less-than(updated,2024-02-01T00:00:00+00:00))"
    early = (datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 1, tzinfo=timezone.utc))
    with pytest.raises(ConfigError, match=r"^--start/--end: the window ends at 2024-01-01 00:00:00, not after start_date 2024-01-01; nothing before start_date is read$"):
        plan_of(tmp_path, "  profiles: incremental\n", window=early)


def test_a_window_needs_the_apis_less_than_only_for_streams_it_bounds_above(tmp_path: Path) -> None:
    api = dataclasses.replace(SPEC.api, filter=dataclasses.replace(SPEC.api.filter, operators={
        op: word for op, word in SPEC.api.filter.operators.items() if op != "lt"}))
    spec = dataclasses.replace(SPEC, api=api)
    window = (datetime(2026, 6, 1, tzinfo=timezone.utc), datetime(2026, 6, 8, tzinfo=timezone.utc))
    (lists,) = build_plan(config(tmp_path, "  lists: incremental\n"), spec, {}, NOW, window=window).streams
    assert lists.partitions[0].until == window[1]
    with pytest.raises(ConfigError, match=r"^--start/--end need a less-than filter, which the spec's API \(Klaviyo\) does not declare$"):
        build_plan(config(tmp_path, "  lists: incremental\n  profiles: incremental\n"), spec, {}, NOW, window=window)
