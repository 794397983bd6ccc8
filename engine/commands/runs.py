"""`klx runs`: the recent runs kept in <prefix>klx_runs."""

from __future__ import annotations

import sys
from pathlib import Path

from ..cli_output import print_runs
from ..destinations import build_destination
from ..errors import json_line
from ..history import records_from_rows
from . import config_without_secrets


def list_runs(config_path: Path, *, limit: int = 20, as_json: bool = False) -> int:
    """Print the newest `limit` runs (newest first); --log-format json prints each run's report as a `run` event."""
    config = config_without_secrets(config_path)
    destination = build_destination(config.destination, create=False)  # it only reads
    try:
        records = records_from_rows(destination.read_runs(limit))
    finally:
        destination.close()
    if as_json:
        for record in records:
            print(json_line("run", **record.to_json()))
        return 0
    if not records:
        print(f"no runs recorded yet in {config.destination.table_prefix}klx_runs; `klx run {config_path}` records one")
        return 0
    print_runs(records, sys.stdout)
    return 0
