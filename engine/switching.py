"""How soon a thread waiting for Python's interpreter lock (the GIL) gets it, paced for a sync.

A sync's threads share one lock: the streams' readers (records, rows) and the fetch threads' parsing hold
it nearly all the time, while a fetch thread waiting on its socket and the writer waiting on the warehouse
run without it. When one of those comes back, it asks for the lock and gets it only once the holder has
run on for the switch interval, 5 ms by default; meanwhile its next request or its next statement waits,
and with it the socket, the warehouse and the second core. A run hands the lock over ten times as often.

Measured on a warm simulator (bench/README.md, Session 9), alternating runs of each setting: 100,000 events
took 4.71-5.38 s at 5 ms and 3.78-4.12 s at 0.5 ms, the same CPU seconds; events and 10,000 profiles
5.18-5.90 s against 4.68-5.05 s. Shorter than 0.5 ms gained nothing more (0.2 ms: 4.00-4.12 s, 0.1 ms:
4.07-4.24 s) and costs more handovers between the readers themselves.
"""

from __future__ import annotations

import sys

RUN_SWITCH_INTERVAL = 0.0005  # seconds


def pace() -> float:
    """Set the run's switch interval; returns the previous one for restore()."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(RUN_SWITCH_INTERVAL)
    return previous


def restore(previous: float) -> None:
    """Put back the interval pace() replaced."""
    sys.setswitchinterval(previous)
