"""Bad config and spec input through the real `klx run`: exit 2, one exact line naming file:line, nothing written.

Each case pairs an input with the message a user sees (dlt's INVALID_CONFIGS). Config cases edit a good
config.yaml; spec cases edit a copy of specs/klaviyo.yaml that the config points at. `{line}` in a message
is the line of the case's marker text in the edited file, so messages stay exact while specs evolve.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.cli import main
from tests.klx_testing import ROOT

TODAY = datetime.now(timezone.utc).date().isoformat()
CONFIG = """\
source:
  api_key: ${KLAVIYO_API_KEY}
  start_date: 2024-01-01
  spec: spec.yaml
  base_url: http://127.0.0.1:9  # nothing listens: a check that regresses fails fast, offline
destination:
  type: duckdb
  path: out.duckdb
  table_prefix: kl_
resources:
  profiles: incremental
  segments: incremental
  segments_profiles: full_refresh
"""
SPEC = (ROOT / "specs" / "klaviyo.yaml").read_text()


def run_klx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, config: str | bytes,
            spec: str = SPEC, args: tuple[str, ...] = ()) -> tuple[int, str, str]:
    """`klx run config.yaml` in an empty folder; exit code, stdout, stderr."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KLAVIYO_API_KEY", "pk_test_0123456789abcdef")
    Path("config.yaml").write_bytes(config if isinstance(config, bytes) else config.encode())
    Path("spec.yaml").write_text(spec)
    code = main(["run", "config.yaml", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(tmp_path: Path, code: int, out: str, err: str, message: str) -> None:
    """Exit 2, exactly `message` on stderr, no traceback, no output, no database created."""
    assert "Traceback" not in err
    assert (code, out, err) == (2, "", f"error: {message}\n")
    # The run lock beside the config (engine/lock.py) is no output: it holds no data and stays by design.
    written = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith("klx.lock"))
    assert written == ["config.yaml", "spec.yaml"]


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# (config text, args, expected message). Messages are exact.
BAD_CONFIGS = [
    pytest.param(edit(CONFIG, "2024-01-01", "2205-01-01"), (),
                 f"config.yaml:3: source.start_date: 2205-01-01 is in the future (today is {TODAY}); nothing would be read",
                 id="future-start-date"),
    pytest.param(edit(CONFIG, "  segments: incremental\n", "  segment: incremental\n"), (),
                 "config.yaml:12: resources.segment: unknown resource; did you mean 'segments'?", id="unknown-resource"),
    pytest.param(edit(CONFIG, "  segments: incremental\n", "  nothing_like_it: incremental\n"), (),
                 "config.yaml:12: resources.nothing_like_it: unknown resource; known: campaigns, email_templates, events, "
                 "flows, global_exclusions, lists, metrics, profiles, segments, segments_profiles", id="unknown-resource-far"),
    pytest.param(edit(CONFIG, "segments_profiles: full_refresh", "segments_profiles: incremental"), (),
                 "config.yaml:13: resources.segments_profiles: incremental is not supported; use full_refresh",
                 id="unsupported-sync-mode"),
    pytest.param(CONFIG, ("--streams", "profile"),
                 "--streams: 'profile' is not among the resources in config.yaml; did you mean 'profiles'?", id="streams-typo"),
    pytest.param(CONFIG, ("--streams", "events"),
                 "--streams: 'events' is not among the resources in config.yaml; known: profiles, segments, segments_profiles",
                 id="streams-not-selected"),
]


@pytest.mark.parametrize(("config", "args", "message"), BAD_CONFIGS)
def test_bad_config_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, config: str, args: tuple, message: str
) -> None:
    code, out, err = run_klx(tmp_path, monkeypatch, capsys, config, args=args)
    assert_refused(tmp_path, code, out, err, message)
