"""What each cassette holds: klx runs against a seeded simulator, with mutations between them.

The recorder (tests/record_cassettes.py) plays these against a live simulator; the replay tests play the
runs from the cassette and the mutations against an unstarted simulator of the same seed, whose ground
truth the tables must equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from klaviyo_sim import Simulator
from tests.klx_testing import ALL_RESOURCES, FULL_REFRESH_ONLY, SIM_NOW

SEED = 11
SCALE = 0.05
CASSETTE_BASE_URL = "https://a.klaviyo.com"
# Which simulator resource a mutation touches for each klx resource (global exclusions are profiles).
MUTATES = {"global_exclusions": "profiles", "segments_profiles": "profiles"}


@dataclass(frozen=True, slots=True)
class Mutation:
    """A change to the source between two runs."""

    resource: str
    update: int = 0
    create: int = 0
    delete: int = 0

    def apply(self, sim: Simulator) -> dict[str, list[str]]:
        """Apply it to `sim`."""
        return sim.mutate(self.resource, update=self.update, create=self.create, delete=self.delete)


def cases() -> list[tuple[str, str]]:
    """(resource, sync mode) for every cassette."""
    return [(r, m) for r in ALL_RESOURCES for m in ("full_refresh", "incremental") if m == "full_refresh" or r not in FULL_REFRESH_ONLY]


def cassette_name(resource: str, mode: str) -> str:
    """The cassette file stem."""
    return f"{resource}-{mode}"


def mutation(resource: str, mode: str) -> Mutation | None:
    """The change made between the first and second run (None: one run only)."""
    if resource == "metrics":
        return None
    target = MUTATES.get(resource, resource)
    if target == "events":
        return Mutation("events", create=3)
    if resource == "global_exclusions":
        return Mutation(target, update=6, create=2, delete=2)
    return Mutation(target, update=2, create=1, delete=1)


def run_times(sim: Simulator) -> tuple[datetime, datetime]:
    """`now` of the first run, and of the second one given the simulator after the mutation."""
    return SIM_NOW, sim.clock() + timedelta(minutes=5)


def simulator() -> Simulator:
    """The simulator every cassette is recorded from (not started)."""
    return Simulator(seed=SEED, scale=SCALE, now=SIM_NOW)
