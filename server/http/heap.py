"""The server process' start-up heap, taken out of the cyclic garbage collector's full passes.

Everything a server builds before it listens (modules, SQLAlchemy's tables and compiled
statements, pydantic's validators, templates: ~110,000 objects) lives as long as the process.
CPython's full (generation 2) collection still walked all of it every few thousand requests:
30-75 ms with every thread stopped, finding nothing to free, which was the whole p99 of
`bench send` at 32 requests in flight (docs/benchmarks.md). `gc.freeze()` (the standard
library's switch for exactly this) moves what is alive at that point to a permanent
generation the collector no longer visits; later garbage is collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect the garbage of start-up, then freeze what is left; how many objects are frozen.

    Called once per process, when the server is about to take requests (not per app: a test
    process builds hundreds of apps, and whatever was frozen would never be freed)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
