"""The API key never shows: succeeding and failing syncs with -v and --debug, searched in every output, file and table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest

from engine.cli import main
from engine.config import default_spec_path
from klaviyo_sim import Simulator
from tests.hostile_api import HostileApi, metric, send
from tests.klx_testing import ROOT, SIM_NOW, write_config

KEY = "pk_secret_test_0123456789abcdefXYZ"  # the simulator accepts this one
WRONG_KEY = "pk_wrong_key_9876543210zyxwvuABC"


def fast_spec(tmp_path: Path, attempts: int = 2) -> Path:
    """Klaviyo's spec with few attempts and short waits, so failing runs fail fast."""
    text = default_spec_path().read_text().replace("    max_attempts: 8\n", f"    max_attempts: {attempts}\n").replace(
        "    max_wait_seconds: 60\n", "    max_wait_seconds: 0.05\n"
    )
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def klx(tmp_path: Path, config: Path, key: str, flags: list[str]) -> subprocess.CompletedProcess:
    before, after = (flags, []) if flags[0] == "before" else ([], flags)
    argv = [sys.executable, "-m", "engine.cli", *before[1:], "run", str(config), *after[1:]]
    env = {**os.environ, "KLAVIYO_API_KEY": key, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def klx_here(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture):
    """klx in this process (faster than a subprocess): stdout, and stderr with every log record at INFO."""

    def run(tmp_path: Path, config: Path, key: str, flags: list[str]) -> subprocess.CompletedProcess:
        monkeypatch.setenv("KLAVIYO_API_KEY", key)
        monkeypatch.chdir(tmp_path)
        caplog.set_level("INFO")
        before, after = (flags, []) if flags[0] == "before" else ([], flags)
        code = main([*before[1:], "run", str(config), *after[1:]])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess([], code, out, err + caplog.text)

    return run


def leaks(key: str, tmp_path: Path, result: subprocess.CompletedProcess) -> list[str]:
    """Every place the key (or its URL-encoded form) shows: stdout, stderr, any file, any table value."""
    needles = {key, quote(key, safe="")}
    found = [name for name, text in (("stdout", result.stdout), ("stderr", result.stderr)) if any(n in text for n in needles)]
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if any(n.encode() in data for n in needles):
            found.append(str(path))
    for database in tmp_path.rglob("*.duckdb"):
        with duckdb.connect(str(database), read_only=True) as con:
            tables = con.execute("select table_schema, table_name from information_schema.tables").fetchall()
            for schema, table in tables:
                for row in con.execute(f'select cast(columns(*) as varchar) from "{schema}"."{table}"').fetchall():
                    if any(n in str(value) for value in row for n in needles):
                        found.append(f"{database}:{table}")
    return found


@pytest.fixture(scope="module")
def sim():
    with Simulator(seed=11, scale=0.05, now=SIM_NOW, api_key=KEY) as simulator:
        yield simulator


FLAGS = [["before", "-v", "--debug"], ["after", "--debug", "-v"]]


@pytest.mark.parametrize("flags", FLAGS, ids=["flags-before", "flags-after"])
def test_a_succeeding_sync_shows_the_key_nowhere(sim: Simulator, tmp_path: Path, flags: list[str], klx_here) -> None:
    sim.faults.queue(["503", "reset", "truncated"])  # retries get logged with -v
    config = write_config(tmp_path, {"lists": "incremental", "metrics": "full_refresh", "profiles": "incremental"}, base_url=sim.url,
                          database=tmp_path / "klx.duckdb", spec=fast_spec(tmp_path, attempts=4))
    if flags[0] == "after":  # one real process, writing a --report too; one fast, in this process
        result = klx(tmp_path, config, KEY, [*flags, "--report", "report.json"])
        assert (tmp_path / "report.json").exists()
    else:
        result = klx_here(tmp_path, config, KEY, flags)
    assert result.returncode == 0, result.stderr
    assert "retry 3/3" in result.stderr and "GET /api/profiles?" in result.stderr  # -v really logged
    assert leaks(KEY, tmp_path, result) == []


def test_a_sync_failing_on_server_errors_shows_the_key_nowhere(sim: Simulator, tmp_path: Path) -> None:
    sim.faults.queue(["500"] * 4)
    config = write_config(tmp_path, {"lists": "incremental", "metrics": "full_refresh"}, base_url=sim.url,
                          database=tmp_path / "klx.duckdb", spec=fast_spec(tmp_path))
    result = klx(tmp_path, config, KEY, FLAGS[0])
    assert result.returncode == 3, result.stderr
    assert "Traceback (most recent call last)" in result.stderr  # --debug really showed it
    assert leaks(KEY, tmp_path, result) == []


def test_a_rejected_key_shows_nowhere(sim: Simulator, tmp_path: Path, klx_here) -> None:
    config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=sim.url, database=tmp_path / "klx.duckdb")
    result = klx_here(tmp_path, config, WRONG_KEY, FLAGS[1])
    assert result.returncode == 3
    assert "error: Klaviyo 401 on GET /api/metrics (stream metrics): " in result.stderr
    assert leaks(WRONG_KEY, tmp_path, result) == []


def echoing_api() -> HostileApi:
    """Echoes the key everywhere it can: error details, headers, the next link's query, a non-JSON body."""

    def respond(handler, hit) -> None:
        auth = hit.headers.get("authorization", "")
        n = len(api.hits)
        if n == 1:
            send(handler, 503, {"errors": [{"detail": f"overloaded for {auth}"}]}, {"Retry-After": auth})
        elif n == 2:
            send(handler, 200, {"data": [metric(1)], "links": {"next": f"{api.url}/api/metrics?page=2&echo={quote(auth)}"}})
        elif n == 3:
            send(handler, 200, {"data": [metric(2)], "links": {"next": f"/api/metrics?page=3&echo={auth.split()[-1]}"}})
        elif api.fail:
            send(handler, 400, f"<html>bad request from {auth} \x1b]0;{auth}\x07</html>")
        else:
            send(handler, 200, {"data": [metric(3)], "links": {"next": None}})

    api = HostileApi(respond)
    api.fail = False  # type: ignore[attr-defined]
    return api


@pytest.mark.parametrize("fail", [False, True], ids=["succeeding", "failing"])
def test_a_hostile_api_echoing_the_key_cannot_make_klx_show_it(tmp_path: Path, fail: bool, klx_here) -> None:
    with echoing_api() as api:
        api.fail = fail  # type: ignore[attr-defined]
        config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=api.url, database=tmp_path / "klx.duckdb",
                              spec=fast_spec(tmp_path))
        result = klx_here(tmp_path, config, KEY, FLAGS[0])
    assert result.returncode == (3 if fail else 0), result.stderr
    assert len(api.hits) == 4
    assert leaks(KEY, tmp_path, result) == []


def test_a_redirect_carrying_the_key_elsewhere_shows_it_nowhere(tmp_path: Path, klx_here) -> None:
    with HostileApi(lambda handler, hit: send(handler, 200, {"data": []})) as elsewhere:
        with HostileApi(lambda h, hit: send(h, 307, b"", {"Location": f"{elsewhere.url}/?k={hit.headers['authorization']}"})) as api:
            config = write_config(tmp_path, {"metrics": "full_refresh"}, base_url=api.url, database=tmp_path / "klx.duckdb")
            result = klx_here(tmp_path, config, KEY, FLAGS[0])
        assert elsewhere.hits == []
    assert result.returncode == 3
    assert f"error: stream metrics failed: Klaviyo 307 on GET /api/metrics (stream metrics): redirected to {elsewhere.url}; klx does not follow redirects\n" in result.stderr
    assert leaks(KEY, tmp_path, result) == []
