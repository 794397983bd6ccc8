"""What README.md promises a new user: `klx demo` from any folder, and each exit code it lists."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.cli import main
from engine.lock import RunLock
from klaviyo_sim import Simulator
from tests.expected_rows import assert_rows_match, expected_figures, expected_rows
from tests.klx_testing import ALL_RESOURCES, ROOT, SIM_NOW, key_of, rows, write_config

README = (ROOT / "README.md").read_text()
DEMO_SCALE, DEMO_SEED = 0.05, 0
DEMO_START = "2024-01-01"  # config.example.yaml's start_date, which the demo uses


def klx(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed `klx` console script (README: pip install -e . && klx demo)."""
    script = Path(sys.executable).parent / "klx"
    assert script.exists(), f"no klx script beside {sys.executable}: pip install -e '.[test]'"
    return subprocess.run([str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def summary_lines(stdout: str) -> dict[str, list[str]]:
    """The per-stream lines of the printed summary: stream -> [mode, events, rows, pages, seconds].

    The summary's columns are stream, mode, status, events, rows, inserted, updated, pages, requests,
    retries, 429s, waited, seconds; every stream printed here must be done.
    """
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["stream", "mode"])
    out = {}
    for line in lines[start + 1:]:
        if line.startswith("total"):
            return out
        name, mode, status, events, kept, _inserted, _updated, pages, *_, seconds = line.split()
        assert status == "done", line
        figures = [mode, events, kept, pages, seconds]
        out[name] = figures
    raise AssertionError(f"no total line in:\n{stdout}")


def demo_once(folder: Path) -> tuple[subprocess.CompletedProcess[str], datetime]:
    """`klx demo` in `folder`, and the simulator's `now` it used (today's midnight, UTC)."""
    for _ in range(2):  # a run that straddles midnight used two different "now"s: run it again
        before = datetime.now(timezone.utc).date()
        done = klx("demo", "--scale", str(DEMO_SCALE), "--seed", str(DEMO_SEED), cwd=folder)
        if datetime.now(timezone.utc).date() == before:
            return done, datetime(before.year, before.month, before.day, tzinfo=timezone.utc)
    raise AssertionError("two demo runs straddled midnight")


def test_klx_demo_from_an_empty_folder_lands_exactly_the_simulators_data(tmp_path: Path) -> None:
    first, now = demo_once(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["klaviyo.duckdb"]
    sim = Simulator(seed=DEMO_SEED, scale=DEMO_SCALE, now=now)  # the demo's simulator, not started

    # The summary's figures, stream by stream, are the simulator's.
    printed = summary_lines(first.stdout)
    assert sorted(printed) == sorted(ALL_RESOURCES)
    for resource in ALL_RESOURCES:
        mode = "full_refresh" if resource in ("metrics", "segments_profiles") else "incremental"
        # The run started after the simulator's midnight and before now, the same day: no window starts in between.
        events, kept, pages = expected_figures(sim, resource, DEMO_START, run_start=datetime.now(timezone.utc))
        assert printed[resource][:4] == [mode, str(events), str(kept), str(pages)], resource
    assert "Loaded into klaviyo.duckdb." in first.stdout

    # Every table holds exactly the simulator's records, every column.
    database = tmp_path / "klaviyo.duckdb"
    for resource in ALL_RESOURCES:
        landed = rows(database, f'select * from "kl_rudder_{resource}"')
        assert_rows_match(resource, landed, expected_rows(sim, resource, DEMO_START), lambda r: key_of(resource, r))

    # "Run it again for an incremental sync": the data did not change, so no incremental row is rewritten.
    second, again = demo_once(tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    if again == now:
        (job,) = re.findall(r"^run ([0-9a-f-]{36}) succeeded:", second.stdout, re.M)
        for resource in ALL_RESOURCES:
            landed = rows(database, f'select context_sources_job_run_id as job from "kl_rudder_{resource}"')
            rewritten = [r for r in landed if r["job"] == job]
            full_refresh = resource in ("metrics", "segments_profiles")
            assert len(rewritten) == (len(landed) if full_refresh else 0), resource


def documented_exit_codes() -> list[int]:
    """The codes README's "Exit codes:" paragraph lists, e.g. `0 done, 2 bad config or spec, ...`."""
    paragraph = README[README.index("Exit codes:"):].split("\n\n")[0]
    return [int(code) for code in re.findall(r"(?:Exit codes:|,)\s+(\d+)\s+[a-z]", paragraph)]


@pytest.fixture
def sim():
    with Simulator(seed=5, scale=0.05, now=SIM_NOW) as simulator:
        yield simulator


@pytest.fixture
def lists_config(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config syncing lists from the simulator, the key in the environment, run from tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KLAVIYO_API_KEY", sim.api_key)
    return write_config(tmp_path, {"lists": "full_refresh"}, base_url=sim.url, database=tmp_path / "x.duckdb")


def done(config: Path, sim: Simulator, request: pytest.FixtureRequest) -> list[str]:
    return ["run", str(config)]


def bad_config(config: Path, sim: Simulator, request: pytest.FixtureRequest) -> list[str]:
    config.write_text(config.read_text().replace("lists: full_refresh", "lists: fullrefresh"))
    return ["run", str(config)]


def api_refused(config: Path, sim: Simulator, request: pytest.FixtureRequest) -> list[str]:
    config.write_text(config.read_text().replace("${KLAVIYO_API_KEY}", "pk_not_the_right_key_0000"))
    return ["run", str(config)]


def warehouse_refused(config: Path, sim: Simulator, request: pytest.FixtureRequest) -> list[str]:
    config.write_text(config.read_text().replace(f"path: {config.parent / 'x.duckdb'}", "path: no/such/folder/x.duckdb"))
    return ["run", str(config)]


def state_unusable(config: Path, sim: Simulator, request: pytest.FixtureRequest) -> list[str]:
    assert main(["run", str(config)]) == 0
    import duckdb

    with duckdb.connect(str(config.parent / "x.duckdb")) as con:
        con.execute("update kl_klx_state set state = '{\"cursor\": 7}' where stream = 'lists'")
    return ["run", str(config)]


def another_sync_running(config: Path, sim: Simulator, request: pytest.FixtureRequest) -> list[str]:
    lock = RunLock.for_config(config, "kl_")
    lock.acquire()
    request.addfinalizer(lock.release)
    return ["run", str(config)]


def full_refresh_read_nothing(config: Path, sim: Simulator, request: pytest.FixtureRequest) -> list[str]:
    assert main(["run", str(config)]) == 0
    sim.mutate("lists", delete=len(sim.truth("lists")))
    return ["run", str(config)]


# README's exit codes, each with a way to cause it.
EXIT_CASES = {
    0: [done],
    2: [bad_config],
    3: [api_refused],
    4: [warehouse_refused, state_unusable],
    5: [another_sync_running],
    6: [full_refresh_read_nothing],
}


def test_every_exit_code_in_the_readme_has_a_case() -> None:
    assert documented_exit_codes() == sorted(EXIT_CASES)


@pytest.mark.parametrize(("code", "cause"), [(c, f) for c, fs in EXIT_CASES.items() for f in fs],
                         ids=[f"{c}-{f.__name__}" for c, fs in EXIT_CASES.items() for f in fs])
def test_klx_run_exits_with_the_code_the_readme_lists(
    code: int, cause, sim: Simulator, lists_config: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    argv = cause(lists_config, sim, request)
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err
    if code:
        assert err.startswith("error: ") and "Traceback" not in err, err
    else:
        assert "error" not in err, err
