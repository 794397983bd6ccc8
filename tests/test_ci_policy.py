"""Nothing important skips in CI: files from ../shared are required under CI=true, and any skip there fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.klx_testing import ROOT, SHARED, shared_file


def test_a_missing_shared_file_skips_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="missing"):
        shared_file(tmp_path / "nope.json")


def test_a_missing_shared_file_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        shared_file(tmp_path / "nope.json")


def test_a_present_shared_file_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    notes = shared_file(SHARED / "klaviyo" / "API-NOTES.md")  # under the run's own CI: skips locally without ../shared
    monkeypatch.setenv("CI", "true")
    assert shared_file(notes) == notes
    assert notes.read_text().strip()


@pytest.mark.parametrize(("ci", "exit_code", "outcome", "workers"), [
    ("", 0, "1 skipped", "0"), ("true", 1, "1 failed", "0"),
    ("true", 1, "1 failed", "1"),  # the suite runs on xdist workers: the verdict must survive the trip to the controller
])
def test_any_skip_is_a_failure_under_ci(tmp_path: Path, ci: str, exit_code: int, outcome: str, workers: str) -> None:
    (tmp_path / "test_skipping.py").write_text("import pytest\n\ndef test_x():\n    pytest.skip('no server here')\n")
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.ci_policy", "-p", "no:cacheprovider", "-n", workers,
                           str(tmp_path / "test_skipping.py")], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == exit_code, done.stdout + done.stderr
    assert outcome in done.stdout
    if ci:
        assert "skipped under CI=true, where every test must run: no server here" in done.stdout
