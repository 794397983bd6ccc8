"""Nothing lost, nothing crashes: unusable records are rejected, one bad stream or parent does not stop the run."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.errors import ApiError
from engine.run import EmptyReplaceRefused, RunSummary
from tests.scripted_api import API_KEY, ScriptedApi, item, not_found, page, write_spec
from tests.klx_testing import rows, sync, write_config

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture
def api():
    with ScriptedApi() as server:
        yield server


def setup(api: ScriptedApi, tmp_path: Path, resources: dict[str, str]) -> tuple[Path, Path]:
    database = tmp_path / "acme.duckdb"
    config = write_config(tmp_path, resources, base_url=api.url, database=database, spec=api.write_spec(tmp_path))
    return config, database


def run_once(config: Path, **kw) -> RunSummary:
    return sync(config, API_KEY, now=NOW, **kw)


def table(database: Path, name: str, columns: str = "*") -> list[dict]:
    return rows(database, f'select {columns} from "kl_acme_{name}" order by all')


def saved_state(database: Path, stream: str) -> dict:
    (row,) = rows(database, "select state from kl_klx_state where stream = ?", [stream])
    return json.loads(row["state"])


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({"type": "item", "attributes": {"updated": "2025-01-02T00:00:00+00:00"}}, "primary key id is missing or null"),
        (item(None), "primary key id is missing or null"),
        (item({"oops": 1}), "primary key id is an object, not a string or number"),
        (item(["a"]), "primary key id is a list, not a string or number"),
        (item(""), "primary key id is an empty string"),
        (item(True), "primary key id is a boolean, not a string or number"),
        ("just a string", "a record that is a string, not an object"),
        ({"type": "item", "id": "x", "attributes": "flat"}, "attributes is a string, not an object"),
        ({"type": "item", "id": "x", "attributes": ["a", "b"]}, "attributes is a list, not an object"),
    ],
)
def test_a_record_without_a_usable_key_is_rejected_counted_and_never_stored(
    api: ScriptedApi, tmp_path: Path, caplog: pytest.LogCaptureFixture, bad, reason: str
) -> None:
    api.routes["/items"] = page(item("a"), bad, item("b"))
    config, database = setup(api, tmp_path, {"items": "incremental"})
    with caplog.at_level(logging.WARNING, logger="klx.run"):
        summary = run_once(config)
    (stream,) = summary.streams
    assert (stream.events, stream.rows, stream.rejected, stream.failed) == (3, 2, 1, False)
    assert [r["id"] for r in table(database, "items", "id")] == ["a", "b"]
    assert stream.warnings == [f"a record from GET /items rejected: {reason}", f"1 record rejected and not stored (first: {reason})"]
    assert f"stream items: a record from GET /items rejected: {reason}" in caplog.messages


def test_a_null_key_record_never_multiplies_over_incremental_runs(api: ScriptedApi, tmp_path: Path) -> None:
    api.routes["/items"] = page(item("a"), item(None), item(None, updated="2025-01-03T00:00:00+00:00"))
    config, database = setup(api, tmp_path, {"items": "incremental"})
    for _ in range(3):
        assert run_once(config).rejected == 2
    assert table(database, "items", "id") == [{"id": "a"}]


def test_a_stream_where_most_records_are_rejected_fails_and_keeps_its_table(api: ScriptedApi, tmp_path: Path) -> None:
    api.routes["/items"] = page(*[item(f"i{n}") for n in range(5)])
    config, database = setup(api, tmp_path, {"items": "incremental", "groups": "full_refresh"})
    api.routes["/groups"] = page(item("g1"))
    run_once(config)
    before, state_before = table(database, "items"), saved_state(database, "items")
    api.routes["/items"] = page(*[item(None, updated="2025-06-01T00:00:00+00:00") for _ in range(12)], item("i9"))
    summary = run_once(config)
    (failed,) = summary.failed
    assert failed.stream == "items" and summary.exit_code == 3
    assert failed.error.message == (
        "stream items: 12 of the 13 records read were rejected (first: primary key id is missing or null); "
        "the stream stops rather than load a fraction of them"
    )
    assert table(database, "items") == before and saved_state(database, "items") == state_before
    assert [s.stream for s in summary.streams if not s.failed] == ["groups"]


def test_a_failing_stream_does_not_stop_the_others(api: ScriptedApi, tmp_path: Path) -> None:
    api.routes["/items"] = (403, {"errors": [{"detail": "You do not have permission."}]})
    api.routes["/groups"] = page(item("g1"), item("g2"))
    config, database = setup(api, tmp_path, {"items": "incremental", "groups": "full_refresh"})
    summary = run_once(config)
    assert [(s.stream, s.failed) for s in summary.streams] == [("items", True), ("groups", False)]
    assert str(summary.failed[0].error) == "Acme 403 on GET /items (stream items): You do not have permission.\n  hint: the key lacks a scope this stream needs: see the API docs"
    assert summary.exit_code == 3
    assert [r["id"] for r in table(database, "groups", "id")] == ["g1", "g2"]
    assert not rows(database, "select * from information_schema.tables where table_name = 'kl_acme_items'")


def test_a_refused_key_stops_the_whole_run(api: ScriptedApi, tmp_path: Path) -> None:
    api.routes["/items"] = (401, {"errors": [{"detail": "Bad key."}]})
    api.routes["/groups"] = page(item("g1"))
    config, _ = setup(api, tmp_path, {"items": "incremental", "groups": "full_refresh"})
    with pytest.raises(ApiError) as raised:
        run_once(config)
    assert raised.value.status == 401
    assert "/groups" not in api.requests


def test_a_parent_deleted_before_its_children_are_read_is_skipped_with_a_warning(api: ScriptedApi, tmp_path: Path) -> None:
    api.routes["/groups"] = page(item("g1"), item("gone"), item("g3"))
    api.routes["/groups/g1/members"] = page(item("m1"), item("m2"))
    api.routes["/groups/gone/members"] = not_found("Segment not found.")
    api.routes["/groups/g3/members"] = page(item("m1"))
    config, database = setup(api, tmp_path, {"members": "full_refresh"})
    (stream,) = run_once(config).streams
    assert not stream.failed
    assert stream.warnings == ["parent groups id=gone skipped: Acme answered 404 on GET /groups/gone/members"]
    assert table(database, "members", "group_id, id") == [
        {"group_id": "g1", "id": "m1"}, {"group_id": "g1", "id": "m2"}, {"group_id": "g3", "id": "m1"}
    ]


def test_a_status_not_declared_as_parent_gone_still_fails_the_stream(api: ScriptedApi, tmp_path: Path) -> None:
    api.routes["/groups"] = page(item("g1"))
    api.routes["/groups/g1/members"] = (400, {"errors": [{"detail": "Bad request."}]})
    config, _ = setup(api, tmp_path, {"members": "full_refresh"})
    (stream,) = run_once(config).failed
    assert stream.error.status == 400


@pytest.mark.parametrize("parent_id", ["..", ".", " .. "])
def test_a_parent_id_that_is_a_dot_segment_never_changes_the_request_path(api: ScriptedApi, tmp_path: Path, parent_id: str) -> None:
    api.routes["/groups"] = page(item(parent_id), item("g1"))
    api.routes["/groups/g1/members"] = page(item("m1"))
    api.routes["/members"] = page(item("stolen"))  # where /groups/../members would land
    config, database = setup(api, tmp_path, {"members": "full_refresh"})
    (stream,) = run_once(config).streams
    assert stream.warnings == [
        f"a groups record from GET /groups skipped: id is {parent_id!r}, a path segment that would change the request path"
    ]
    assert [r for r in api.requests if "members" in r] == ["/groups/g1/members"]
    assert table(database, "members", "id") == [{"id": "m1"}]


def test_a_parent_id_with_a_slash_stays_inside_its_path_segment(api: ScriptedApi, tmp_path: Path) -> None:
    api.routes["/groups"] = page(item("a/../b?x=1"))
    api.routes["/groups/a%2F..%2Fb%3Fx%3D1/members"] = page(item("m1"))
    config, database = setup(api, tmp_path, {"members": "full_refresh"})
    run_once(config)
    assert [r for r in api.requests if "members" in r] == ["/groups/a%2F..%2Fb%3Fx%3D1/members"]
    assert table(database, "members", "group_id, id") == [{"group_id": "a/../b?x=1", "id": "m1"}]


def test_a_full_refresh_that_reads_nothing_keeps_the_table_and_state(api: ScriptedApi, tmp_path: Path) -> None:
    api.routes["/items"] = page(item("a"), item("b"))
    config, database = setup(api, tmp_path, {"items": "full_refresh"})
    run_once(config)
    before, state_before = table(database, "items"), saved_state(database, "items")
    api.routes["/items"] = page()
    summary = run_once(config)
    (failed,) = summary.failed
    assert isinstance(failed.error, EmptyReplaceRefused) and summary.exit_code == 6
    assert str(failed.error) == (
        "stream items: the full refresh read no rows, so table kl_acme_items keeps its 2 rows and the stream its state\n"
        "  hint: a start_date in the future or a lost API scope empties a stream; "
        "if the source really is empty, run again with `klx run --allow-empty`"
    )
    assert table(database, "items") == before and saved_state(database, "items") == state_before
    assert not rows(database, "select * from information_schema.tables where table_name like '%shadow%'")


def test_allow_empty_lets_a_full_refresh_empty_the_table(api: ScriptedApi, tmp_path: Path) -> None:
    api.routes["/items"] = page(item("a"))
    config, database = setup(api, tmp_path, {"items": "full_refresh"})
    run_once(config)
    api.routes["/items"] = page()
    assert run_once(config, allow_empty=True).exit_code == 0
    assert table(database, "items") == []


def test_a_first_full_refresh_of_an_empty_source_is_not_refused(api: ScriptedApi, tmp_path: Path) -> None:
    api.routes["/items"] = page()
    config, _ = setup(api, tmp_path, {"items": "full_refresh"})
    assert run_once(config).exit_code == 0


def test_hostile_values_land_as_text_without_losing_a_digit(api: ScriptedApi, tmp_path: Path) -> None:
    api.routes["/items"] = page(
        item("a", big=2**64, small=-(2**63) - 1, fits=2**63 - 1, early="0001-01-01T00:00:00+01:00", late="9999-12-31T23:59:59-01:00"),
        item("b", big=1, small=2, fits=3, early="2025-01-01T00:00:00+00:00", late="2025-01-01T00:00:00+00:00"),
    )
    config, database = setup(api, tmp_path, {"items": "full_refresh"})
    assert run_once(config).exit_code == 0
    a, b = table(database, "items", "id, big, small, fits, early, late")
    assert (a["big"], a["small"], a["fits"]) == ("18446744073709551616", "-9223372036854775809", 2**63 - 1)
    assert (a["early"], a["late"]) == ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00")
    assert (b["big"], b["small"], b["early"]) == ("1", "2", "2025-01-01T00:00:00+00:00")


def test_the_resource_id_wins_over_an_id_attribute(api: ScriptedApi, tmp_path: Path) -> None:
    api.routes["/items"] = page({"type": "item", "id": "real", "attributes": {"id": "fake", "updated": "2025-01-01T00:00:00+00:00"}})
    config, database = setup(api, tmp_path, {"items": "incremental"})
    run_once(config)
    assert table(database, "items", "id, attributes_id") == [{"id": "real", "attributes_id": "fake"}]


@pytest.mark.parametrize(
    "relationships",
    ["nope", ["a"], {"owner": "x"}, {"owner": {"data": "x"}}, {"owner": {"data": [1, None, {"id": "p"}]}}, {"owner": {"data": {"type": ["t"], "id": {}}}}],
)
def test_odd_relationship_shapes_never_crash(api: ScriptedApi, tmp_path: Path, relationships) -> None:
    api.routes["/items"] = page({"type": "item", "id": "a", "attributes": {"updated": "2025-01-01T00:00:00+00:00"}, "relationships": relationships},
                                included=[{"type": ["t"], "id": {}}, "junk"])
    config, database = setup(api, tmp_path, {"items": "incremental"})
    assert run_once(config).exit_code == 0
    assert [r["id"] for r in table(database, "items")] == ["a"]


def test_an_unreachable_api_stops_the_run_after_the_first_stream(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import socket

    # A port bound but never listened on refuses connections, and stays ours: no parallel test can take it meanwhile.
    with socket.socket() as probe, caplog.at_level(logging.WARNING), pytest.raises(ApiError) as raised:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        database = tmp_path / "acme.duckdb"
        spec = write_spec(tmp_path)
        config = write_config(tmp_path, {"items": "incremental", "groups": "full_refresh"}, base_url=f"http://127.0.0.1:{port}",
                              database=database, spec=spec)
        run_once(config)
    assert raised.value.message.startswith("Acme unreachable on GET /items (stream items): connection refused")
    assert not [m for m in caplog.messages if "/groups" in m]  # the second stream never waited on it
