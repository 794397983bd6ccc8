"""klaviyo_sim: a deterministic local simulator of Klaviyo's REST API (revision 2026-07-15)."""

from __future__ import annotations

from typing import Any

__all__ = ["FaultConfig", "Simulator"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `klx` loads this package for its `sim` and `demo` commands on every start,
    # and a `klx run` never needs the server, its data or its query engine.
    if name == "Simulator":
        from klaviyo_sim.server import Simulator

        return Simulator
    if name == "FaultConfig":
        from klaviyo_sim.faults import FaultConfig

        return FaultConfig
    raise AttributeError(f"module 'klaviyo_sim' has no attribute {name!r}")
