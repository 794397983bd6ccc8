"""Docs stay true: every config key is documented in config.example.yaml, every spec key in specs/README.md."""

from __future__ import annotations

import re

import pytest

from tests.klx_testing import ROOT

EXAMPLE = (ROOT / "config.example.yaml").read_text()
SPEC_README = (ROOT / "specs" / "README.md").read_text()


def keys_read_by(path: str) -> set[str]:
    """Keys a loader asks its Reader for: get("key", …) and child("key", …)."""
    return set(re.findall(r'\.(?:get|child|has)\("([a-z_]+)"', (ROOT / path).read_text()))


def destination_options() -> set[str]:
    """Every option of every destination module (its OPTIONS tuple)."""
    found: set[str] = set()
    for module in (ROOT / "engine" / "destinations").glob("*.py"):
        for allowed in re.findall(r"^OPTIONS = \(([^)]*)\)", module.read_text(), re.M):
            found |= set(re.findall(r'"([a-z_]+)"', allowed))
    return found


def test_every_destination_documents_its_options() -> None:
    assert {"path", "storage_version", "dsn", "password"} <= destination_options()


@pytest.mark.parametrize("key", sorted(keys_read_by("engine/config.py") | destination_options() | {"table_prefix", "type"}))
def test_config_key_is_documented_in_the_example(key: str) -> None:
    assert re.search(rf"^\s*#?\s*{key}:", EXAMPLE, re.M), f"config.example.yaml does not document {key!r}"


@pytest.mark.parametrize("key", sorted(keys_read_by("engine/spec.py")))
def test_spec_key_is_documented_in_specs_readme(key: str) -> None:
    assert f"`{key}" in SPEC_README or f".{key}`" in SPEC_README, f"specs/README.md does not document {key!r}"


def test_readme_commands_are_the_ones_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -e . && klx demo" in readme
    assert "python -m pytest -q" in readme and "python -m pytest -q" in ci


README = (ROOT / "README.md").read_text()


def readme_section(title: str) -> str:
    """The text of one `## title` section of README.md."""
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


@pytest.mark.parametrize("key", sorted(keys_read_by("engine/config.py") | destination_options() | {"table_prefix", "type"}))
def test_config_key_is_in_the_readmes_configuration_reference(key: str) -> None:
    reference = readme_section("Configuration reference")
    assert re.search(rf"[`.]{key}[`.,]", reference), f"README's configuration reference does not mention {key!r}"


def cli_commands() -> list[str]:
    from engine.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return sorted(commands.choices)


@pytest.mark.parametrize("command", cli_commands())
def test_every_cli_command_is_in_the_readme(command: str) -> None:
    assert f"`klx {command}" in README, f"README does not document `klx {command}`"


def test_readme_names_the_config_keys_the_example_has() -> None:
    example_keys = set(re.findall(r"^\s*#?\s*([a-z_]+):", EXAMPLE, re.M)) - {"type", "resources", "source", "destination", "schedule"}
    resource_names = {"campaigns", "email_templates", "events", "flows", "global_exclusions", "lists", "metrics", "segments",
                      "segments_profiles", "profiles"}
    reference = readme_section("Configuration reference")
    missing = sorted(k for k in example_keys - resource_names if not re.search(rf"[`.]{k}[`,]", reference))
    assert missing == []


def test_the_cron_recipe_hands_klx_the_key_from_the_systemd_env_file(tmp_path) -> None:
    # scheduling.md's cron line sourced klx.env, written for systemd's EnvironmentFile (KLAVIYO_API_KEY=pk_..., no
    # export): `.` alone left the variable unexported, and every tick failed "KLAVIYO_API_KEY is not set".
    import os
    import subprocess

    [line] = [line for line in (ROOT / "docs" / "scheduling.md").read_text().splitlines() if line.startswith("0 */2 * * *  cd /etc/klx")]
    command = line.split(None, 5)[5].replace("/etc/klx", str(tmp_path))
    command = command.replace("/opt/klx/bin/klx run config.yaml >> /var/log/klx.log 2>&1", "printenv KLAVIYO_API_KEY")
    (tmp_path / "klx.env").write_text("KLAVIYO_API_KEY=pk_from_env_file\n")
    env = {k: v for k, v in os.environ.items() if k != "KLAVIYO_API_KEY"}
    done = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=30)
    assert done.stdout == "pk_from_env_file\n", done.stderr
