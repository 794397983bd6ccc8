"""Python's cyclic garbage collector, paced for a sync.

A sync allocates a few dozen dicts and lists per record (parsed pages, records, column lists). With the
default thresholds (700, 10, 10) that sets off a young collection every ~25 records and a full one, which
walks every live object (pages read ahead, the batch being built, every imported module), every few
thousand: about 20 µs a record in bench/engine.py, a sixth of the engine's time. Almost none of it is
cyclic garbage, which is what the collector is for, so a run collects less often; reference counting
still frees everything else at once.
"""

from __future__ import annotations

import gc

# ~50,000 container allocations between young collections (about 1,500 records); older generations as usual.
RUN_THRESHOLDS = (50_000, 20, 10)


def pace() -> tuple[int, int, int]:
    """Set the run's collection thresholds; returns the previous ones for restore()."""
    previous = gc.get_threshold()
    gc.set_threshold(*RUN_THRESHOLDS)
    return previous


def restore(previous: tuple[int, int, int]) -> None:
    """Put back the thresholds pace() replaced."""
    gc.set_threshold(*previous)
