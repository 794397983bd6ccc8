"""Shared test helpers: a config for a simulator or cassette run, and reading tables back."""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pytest

from engine.config import Config
from engine.run import RunSummary, run

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"  # ../shared beside the checkout: OpenAPI files, recorded payloads, notes
SIM_NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)  # the simulator's "now" in tests and cassettes
START_DATE = "2024-01-01"
ALL_RESOURCES = (
    "campaigns", "email_templates", "events", "flows", "global_exclusions",
    "lists", "metrics", "segments", "segments_profiles", "profiles",
)
FULL_REFRESH_ONLY = ("metrics", "segments_profiles")


def write_config(tmp_path: Path, resources: dict[str, str], *, base_url: str | None, database: Path, prefix: str = "kl_",
                 spec: Path | None = None) -> Path:
    """A config.yaml selecting `resources` (name -> sync mode)."""
    lines = ["source:", "  api_key: ${KLAVIYO_API_KEY}", f"  start_date: {START_DATE}"]
    if base_url:
        lines.append(f"  base_url: {base_url}")
    if spec:
        lines.append(f"  spec: {spec}")
    lines += ["destination:", "  type: duckdb", f"  path: {database}", f"  table_prefix: {prefix}", "resources:"]
    lines += [f"  {name}: {mode}" for name, mode in resources.items()]
    path = tmp_path / f"config-{prefix}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def default_modes(resources: tuple[str, ...] = ALL_RESOURCES) -> dict[str, str]:
    """Incremental wherever the resource supports it."""
    return {r: ("full_refresh" if r in FULL_REFRESH_ONLY else "incremental") for r in resources}


def sync(config_path: Path, api_key: str, **kw: Any) -> RunSummary:
    """One klx run of `config_path` with the key in the environment the config names."""
    config = Config.from_yaml(config_path, env={"KLAVIYO_API_KEY": api_key})
    kw.setdefault("sleep", lambda seconds: None)
    return run(config, **kw)


def rows(database: Path, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    """Query results as dicts, read through Arrow (TIMESTAMPTZ to Python needs no pytz that way)."""
    with duckdb.connect(str(database), read_only=True) as con:
        return con.sql(sql, params=params or None).to_arrow_table().to_pylist()


def key_of(resource: str, record: dict[str, Any]) -> tuple:
    """The primary key of a truth record or a row."""
    return (record["segment_id"], record["id"]) if resource == "segments_profiles" else (record["id"],)


def with_base_url(config: Config, base_url: str) -> Config:
    """`config` pointed at another base URL."""
    return dataclasses.replace(config, source=dataclasses.replace(config.source, base_url=base_url))


def in_ci() -> bool:
    """Whether the suite runs in CI (CI=true, as CI services set it), where nothing important may skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def shared_file(path: Path) -> Path:
    """`path`, which lives outside the repo (../shared): skip when it is missing, but fail under CI=true."""
    if not path.exists():
        message = f"{path} is missing (../shared is not beside this checkout)"
        if in_ci():
            pytest.fail(f"{message}; CI=true runs every test, so lay ../shared out", pytrace=False)
        pytest.skip(message)
    return path



# How read_only_folder refuses: a real chmod 0555 only where it refuses (root writes through it; such a test
# would have to skip, and CI=true, which runs as root here, fails a skip), and open() refusing everywhere.
READ_ONLY_WAYS = ["simulated"] + (["chmod"] if os.geteuid() != 0 else [])


@contextlib.contextmanager
def read_only_folder(folder: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`folder` refusing new files: by chmod 0555 (`how` "chmod"; not as root, who writes through it) or
    by open() raising PermissionError for any file in it ("simulated"; pathlib's reads do not go through it)."""
    if how == "chmod":
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    real_open = builtins.open

    def refusing_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, os.PathLike)) and Path(file).parent == folder:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(builtins, "open", refusing_open)
        yield
