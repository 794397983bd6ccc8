"""`klx state show|reset`: the saved cursors of each stream, and forgetting them so a stream reads from start_date."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from ..config import Config
from ..destinations import build_destination
from ..errors import ConfigError, json_line
from ..lock import RunLock
from ..state import StateError, encode_state, mark_unresolved, unresolved_until
from . import config_without_secrets


def _streams(config: Config, only: tuple[str, ...]) -> list[str]:
    selected = [r.name for r in config.resources]
    for name in only:
        if name not in selected:
            raise ConfigError(f"--streams: {name!r} is not among the resources in {config.path}; they are: {', '.join(selected)}")
    return [name for name in selected if not only or name in only]


def show(config_path: Path, only: tuple[str, ...] = (), *, as_json: bool = False, out: TextIO | None = None) -> int:
    """Print each stream's saved cursor per partition (none: the next run reads from start_date)."""
    out = out or sys.stdout
    config = config_without_secrets(config_path)
    destination = build_destination(config.destination, create=False)  # it only reads
    report: dict[str, Any] = {}
    try:
        for name in _streams(config, only):
            try:
                state = destination.read_state(name)
            except StateError as err:
                report[name] = {"error": err.message}
                continue
            report[name] = {"cursor": (state or {}).get("cursor", {}), "columns": len((state or {}).get("columns", []))} if state else None
            if (unresolved := unresolved_until(state)) is not None:
                report[name]["repeats_unresolved"] = unresolved.isoformat()
    finally:
        destination.close()
    if as_json:
        print(json_line("state", streams=report), file=out)
        return 0
    start = config.source.start_date.isoformat()
    for name, state in report.items():
        if state is None:
            print(f"{name}: no saved state; the next run reads from start_date {start}", file=out)
        elif "error" in state:
            print(f"{name}: unusable state: {state['error']} (klx state reset --streams {name} forgets it)", file=out)
        elif not state["cursor"]:
            print(f"{name}: no cursor (full refresh or nothing read yet); {state['columns']} column names kept", file=out)
        else:
            print(f"{name}: {state['columns']} column names kept; cursor per partition:", file=out)
            for partition, cursor in sorted(state["cursor"].items()):
                print(f"  {partition or '(whole stream)'}: {cursor}", file=out)
        if state and "repeats_unresolved" in state:
            print(f"  a first sync stopped after loading rows at {state['repeats_unresolved']}: the table may hold a key more "
                  "than once until the stream's next run ends, which keeps the newest row of each", file=out)
    return 0


def reset(config_path: Path, only: tuple[str, ...] = (), *, out: TextIO | None = None) -> int:
    """Forget the cursors of the selected streams (all without --streams), under the config's lock.

    Column names are kept, so the tables keep their columns; an unusable state row is deleted outright.
    """
    out = out or sys.stdout
    config = config_without_secrets(config_path)
    names = _streams(config, only)
    with RunLock.for_config(config.path, config.destination.table_prefix):
        # Not created: a reset writes only over a state row that exists, so a mistyped path or schema is not made.
        destination = build_destination(config.destination, create=False)
        try:
            destination.claim()  # a run of another config file loading the same tables would save its cursors over ours
            for name in names:
                try:
                    state = destination.read_state(name)
                except StateError:
                    destination.delete_state(name)
                    print(f"{name}: unusable state row deleted; the next run reads from start_date", file=out)
                    continue
                if state is None:
                    print(f"{name}: no saved state, nothing to reset", file=out)
                    continue
                reset = encode_state({}, state.get("columns", []))
                if (unresolved := unresolved_until(state)) is not None:  # a killed first sync's repeats stay to resolve
                    reset = mark_unresolved(reset, unresolved)
                with destination.transaction():
                    destination.save_state(name, reset)
                print(f"{name}: cursor reset; the next run reads from start_date {config.source.start_date:%Y-%m-%d}", file=out)
        finally:
            destination.close()
    return 0
