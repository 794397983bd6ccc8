"""One sync as `klx run` and each scheduled tick do it: under the config's lock, with the summary printed."""

from __future__ import annotations

from typing import Any

from ..cli_output import SummaryPrinter
from ..config import Config
from ..lock import RunLock
from ..run import RunSummary, run


def sync_once(config: Config, **run_options: Any) -> RunSummary:
    """Run one sync holding the lock of `config` and its table prefix; LockedError if another process holds it."""
    printer = SummaryPrinter()
    with RunLock.for_config(config.path, config.destination.table_prefix):
        summary = run(config, on_stream=printer.stream, **run_options)
    printer.total(summary)
    return summary
