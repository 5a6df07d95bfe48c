"""The server process' garbage collector, set for a long-lived server under load.

- **The start-up heap is frozen.** Everything a server builds before it listens (modules,
  SQLAlchemy's tables and compiled statements, pydantic's validators, templates: ~110,000
  objects) lives as long as the process. CPython's full (generation 2) collection still
  walked all of it every few thousand requests: 30-75 ms with every thread stopped, finding
  nothing to free, which was the whole p99 of `bench send` at 32 requests in flight
  (docs/benchmarks.md). `gc.freeze()` (the standard library's switch for exactly this) moves
  what is alive at that point to a permanent generation the collector no longer visits.
- **Young collections run less often.** At the default threshold (700 net new objects) the
  collector ran ~90 young collections a second under `bench send`, ~3% of the process'
  time, and freed next to nothing: a request's objects are freed by reference counting
  when it ends, so the young generation mostly held the requests still in flight.

Later garbage, cycles included, is still collected; only how often the collector looks
changes.
"""

from __future__ import annotations

import gc

# Net new container objects between two young collections (CPython's default: 700).
YOUNG_THRESHOLD = 10_000


def settle_heap() -> int:
    """Collect the garbage of start-up, freeze what is left and raise the young generation's
    threshold; how many objects are frozen.

    Called once per process, when the server is about to take requests (not per app: a test
    process builds hundreds of apps, and whatever was frozen would never be freed)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    return gc.get_freeze_count()
