"""klaviyo_sim: a deterministic local simulator of Klaviyo's REST API (revision 2026-07-15)."""

from klaviyo_sim.faults import FaultConfig
from klaviyo_sim.server import Simulator

__all__ = ["FaultConfig", "Simulator"]
