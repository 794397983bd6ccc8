"""Hostile API answers and foreign state rows through `klx run`: exit code, one exact line, no traceback, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from engine.cli import main
from tests.scripted_api import API_KEY, ScriptedApi, item, not_found, page
from tests.klx_testing import rows, sync, write_config

GOOD_ITEMS = page(item("a"), item("b", updated="2025-02-01T00:00:00+00:00"))
STATE_HINT = "`klx state reset CONFIG --streams items` deletes that row; the stream then syncs again from start_date"


GOOD_ROUTES = {"/items": GOOD_ITEMS, "/groups": page(item("g1"), item("g2"))}
RESOURCES = {"items": "incremental", "groups": "full_refresh"}


@pytest.fixture(scope="module")
def api():
    with ScriptedApi() as server:
        yield server


@pytest.fixture(scope="module")
def synced_once(api: ScriptedApi, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding one good sync of items (incremental) and groups (full refresh), made once per module."""
    folder = tmp_path_factory.mktemp("synced")
    api.routes.update(GOOD_ROUTES)
    config = write_config(folder, RESOURCES, base_url=api.url, database=folder / "acme.duckdb", spec=api.write_spec(folder))
    assert sync(config, API_KEY).failed == []
    return folder / "acme.duckdb"


@pytest.fixture
def synced(api: ScriptedApi, synced_once: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The scripted API answering well again, a config, and a copy of the synced database."""
    monkeypatch.setenv("KLAVIYO_API_KEY", API_KEY)
    api.routes.clear()
    api.routes.update(GOOD_ROUTES)
    database = tmp_path / "acme.duckdb"
    shutil.copyfile(synced_once, database)  # closed, so checkpointed: the file is the whole database
    config = write_config(tmp_path, RESOURCES, base_url=api.url, database=database, spec=api.write_spec(tmp_path))
    yield api, config, database


def snapshot(database: Path) -> dict[str, list[tuple]]:
    """Every table's rows, in order (read through Arrow: TIMESTAMPTZ to Python needs no pytz that way).

    The run history (<prefix>klx_runs) is left out: every run, failed or not, appends its row there.
    """
    with duckdb.connect(str(database), read_only=True) as con:
        names = [n for (n,) in con.execute("select table_name from information_schema.tables order by 1").fetchall() if not n.endswith("klx_runs")]
        return {n: [tuple(r.values()) for r in con.sql(f'select * from "{n}" order by all').to_arrow_table().to_pylist()] for n in names}


def set_state(database: Path, text: str) -> None:
    with duckdb.connect(str(database)) as con:
        con.execute("update kl_klx_state set state = ? where stream = 'items'", [text])


def run_cli(config: Path, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, list[str], str]:
    capsys.readouterr()
    code = main(["run", str(config), *args])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    return code, errors, captured.out + captured.err


def deep(levels: int) -> str:
    return '{"data": ' + "[" * levels + "]" * levels + "}"


# (name, route answer for /items, exit code, the one error line)
API_CASES: list[tuple[str, Any, int, str]] = [
    ("body is a list", [1, 2], 3, "error: stream items failed: the response to GET /items (stream items) has no record list at 'data'"),
    ("data is an object", {"data": {"id": "a"}}, 3, "error: stream items failed: the response to GET /items (stream items) has no record list at 'data'"),
    ("data is a string", {"data": "nope"}, 3, "error: stream items failed: the response to GET /items (stream items) has no record list at 'data'"),
    ("body is null", "null", 3, "error: stream items failed: the response to GET /items (stream items) has no record list at 'data'"),
    ("forbidden", (403, {"errors": [{"detail": "Missing scope items:read."}]}), 3,
     "error: stream items failed: Acme 403 on GET /items (stream items): Missing scope items:read. "
     "(hint: the key lacks a scope this stream needs: see the API docs)"),
    # The run's first request: nothing has answered yet, so the base URL is the likelier culprit than the path.
    ("gone", (404, {"errors": [{"detail": "Not found."}]}), 3, "error: stream items failed: Acme 404 on GET /items (stream items): Not found. "
     "(hint: check source.base_url (BASE_URL): it is the API's root, to which the spec adds paths like /items)"),
    ("bad request with escapes", (400, {"errors": [{"detail": "bad\x1b[31m red\nnext line"}]}), 3,
     "error: stream items failed: Acme 400 on GET /items (stream items): bad red next line"),
    ("mostly key-less records", page(*[item(None, updated="2025-03-01T00:00:00+00:00") for _ in range(10)], item("c")), 3,
     "error: stream items failed: 10 of the 11 records read were rejected (first: primary key id is missing or null); "
     "the stream stops rather than load a fraction of them (hint: check the stream's primary_key in the spec against what the API now returns)"),
    ("mostly non-objects", page(*["x"] * 12), 3,
     "error: stream items failed: 12 of the 12 records read were rejected (first: a record that is a string, not an object); "
     "the stream stops rather than load a fraction of them (hint: check the stream's primary_key in the spec against what the API now returns)"),
    ("mostly string attributes", page(*[{"type": "item", "id": f"s{i}", "attributes": "x"} for i in range(12)]), 3,
     "error: stream items failed: 12 of the 12 records read were rejected (first: attributes is a string, not an object); "
     "the stream stops rather than load a fraction of them (hint: check the stream's primary_key in the spec against what the API now returns)"),
]


@pytest.mark.parametrize("name, answer, code, line", API_CASES, ids=[c[0] for c in API_CASES])
def test_a_hostile_answer_fails_its_stream_with_one_line_and_writes_nothing(synced, capsys, name: str, answer: Any, code: int, line: str) -> None:
    api, config, database = synced
    before = snapshot(database)
    api.routes["/items"] = answer
    exit_code, errors, output = run_cli(config, capsys, "--streams", "items")
    assert (exit_code, errors) == (code, [line.replace("BASE_URL", api.url)])
    assert "Traceback" not in output and API_KEY not in output
    assert snapshot(database) == before


def test_one_failed_stream_is_named_and_the_other_still_syncs(synced, capsys) -> None:
    api, config, database = synced
    api.routes["/items"] = (403, {"errors": [{"detail": "Missing scope items:read."}]})
    api.routes["/groups"] = page(item("g1"), item("g3"))
    exit_code, errors, output = run_cli(config, capsys)
    assert exit_code == 3
    assert errors == [
        "error: stream items failed: Acme 403 on GET /items (stream items): Missing scope items:read. "
        "(hint: the key lacks a scope this stream needs: see the API docs)"
    ]
    summary = [line.split() for line in output.splitlines() if line.startswith(("items", "groups", "run "))]
    # stream, mode, status, events, rows, inserted, updated, pages, requests, retries, 429s, waited, seconds
    assert summary[0][:9] == ["items", "incremental", "failed", "0", "0", "0", "0", "0", "1"]
    assert summary[1][:9] == ["groups", "full_refresh", "done", "2", "2", "2", "0", "1", "1"] and len(summary[1]) == 13
    assert summary[2][-3:] == ["1", "stream", "failed"]
    assert [r["id"] for r in rows(database, "select id from kl_acme_groups order by id")] == ["g1", "g3"]


def test_a_full_refresh_reading_nothing_exits_6_and_keeps_the_table(synced, capsys) -> None:
    api, config, database = synced
    before = snapshot(database)
    api.routes["/groups"] = page()
    exit_code, errors, output = run_cli(config, capsys, "--streams", "groups")
    assert (exit_code, errors) == (6, [
        "error: stream groups failed: the full refresh read no rows, so table kl_acme_groups keeps its 2 rows and "
        "the stream its state (hint: a start_date in the future or a lost API scope empties a stream; if the source really is "
        "empty, run again with `klx run --allow-empty`)"
    ])
    assert snapshot(database) == before
    assert run_cli(config, capsys, "--streams", "groups", "--allow-empty")[0] == 0
    assert snapshot(database)["kl_acme_groups"] == []


# (name, state row text for items, the problem named)
STATE_CASES: list[tuple[str, str, str]] = [
    ("not JSON", "{oops", "not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    ("not an object", "[1, 2, 3]", "a list, not a JSON object"),
    ("cursor not a mapping", json.dumps({"cursor": "2025-01-01T00:00:00+00:00", "columns": []}),
     "cursor is a string, not an object of partition -> ISO datetime"),
    ("cursor not a datetime", json.dumps({"cursor": {"": "last tuesday"}, "columns": []}), "cursor[\"\"] is 'last tuesday', not an ISO datetime"),
    ("columns malformed", json.dumps({"cursor": {}, "columns": [["id", "id", "text"]]}), "columns[0] path 'id' is not a non-empty list of strings"),
    ("columns not a list", json.dumps({"cursor": {}, "columns": {"id": "text"}}), "columns is an object, not a list of [path, column, type]"),
]


@pytest.mark.parametrize("name, text, problem", STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_a_foreign_state_row_fails_its_stream_with_one_line_and_is_left_alone(synced, capsys, name: str, text: str, problem: str) -> None:
    _, config, database = synced
    set_state(database, text)
    before = snapshot(database)
    exit_code, errors, output = run_cli(config, capsys, "--streams", "items")
    assert (exit_code, errors) == (4, [f"error: stream items failed: state of stream items in table main.kl_klx_state: {problem} (hint: {STATE_HINT})"])
    assert "Traceback" not in output
    assert snapshot(database) == before


def test_a_state_from_a_newer_klx_is_refused_and_never_overwritten(synced, capsys) -> None:
    _, config, database = synced
    newer = json.dumps({"version": 3, "cursor": {"": "2025-01-01T00:00:00+00:00"}, "columns": [], "future": {"x": 1}})
    set_state(database, newer)
    before = snapshot(database)
    exit_code, errors, _ = run_cli(config, capsys)
    assert (exit_code, errors) == (4, [
        "error: stream items failed: state of stream items in table main.kl_klx_state: written by a newer klx (state format 3; "
        "this klx reads up to 2); left as it is (hint: upgrade klx to run this stream)"
    ])
    after = snapshot(database)
    assert after["kl_acme_items"] == before["kl_acme_items"]
    assert [json.loads(state) for stream, state, _ in after["kl_klx_state"] if stream == "items"] == [json.loads(newer)]


def test_the_state_klx_saves_carries_its_format_version(synced) -> None:
    _, _, database = synced
    states = {stream: json.loads(state) for stream, state, _ in snapshot(database)["kl_klx_state"]}
    assert states["items"]["version"] == 1 and states["items"]["cursor"] == {"": "2025-02-01T00:00:00+00:00"}


def test_a_deleted_parent_is_a_warning_not_a_failure(synced, capsys, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    api, _, database = synced
    config = write_config(tmp_path, {"members": "full_refresh"}, base_url=api.url, database=database, spec=api.write_spec(tmp_path), prefix="m_")
    api.routes["/groups/g1/members"] = page(item("m1"))
    api.routes["/groups/g2/members"] = not_found("Group not found.")
    exit_code, errors, output = run_cli(config, capsys)
    assert (exit_code, errors) == (0, [])
    assert caplog.messages == ["stream members: parent groups id=g2 skipped: Acme answered 404 on GET /groups/g2/members"]
    assert output.splitlines()[-1].endswith("events/s); 1 warning")
    assert rows(database, "select group_id, id from m_acme_members") == [{"group_id": "g1", "id": "m1"}]


def test_the_hints_command_clears_a_foreign_state_row_and_the_stream_syncs_again(synced, capsys) -> None:
    _, config, database = synced
    set_state(database, "{oops")
    assert run_cli(config, capsys, "--streams", "items")[0] == 4
    assert main(["state", "reset", str(config), "--streams", "items"]) == 0
    exit_code, errors, _ = run_cli(config, capsys, "--streams", "items")
    assert (exit_code, errors) == (0, [])
    assert [r["id"] for r in rows(database, "select id from kl_acme_items order by id")] == ["a", "b"]


def test_a_few_key_less_records_are_counted_in_the_summary_and_the_run_succeeds(synced, capsys, caplog: pytest.LogCaptureFixture) -> None:
    api, config, database = synced
    api.routes["/items"] = page(item("a"), item(None, updated="2025-03-01T00:00:00+00:00"), item("c", updated="2025-03-02T00:00:00+00:00"))
    exit_code, errors, output = run_cli(config, capsys, "--streams", "items")
    assert (exit_code, errors) == (0, [])
    (line,) = [line for line in output.splitlines() if line.startswith("items ")]
    assert line.split()[:5] == ["items", "incremental", "done", "3", "2"] and line.endswith("  1 rejected")
    assert [line for line in output.splitlines() if line.startswith("run ")][0].endswith("events/s); 1 record rejected, 2 warnings")
    assert caplog.messages == [
        "stream items: a record from GET /items rejected: primary key id is missing or null",
        "stream items: 1 record rejected and not stored (first: primary key id is missing or null)",
    ]
    assert [r["id"] for r in rows(database, "select id from kl_acme_items order by id")] == ["a", "b", "c"]
