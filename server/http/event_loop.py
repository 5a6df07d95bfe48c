"""The event loop a server process runs on: uvloop where it is installed, asyncio otherwise.

uvloop (libuv under asyncio's API) runs the same application code; on the send path the
server's CPU per request fell ~12% and `bench send` answered ~17% more requests a second
(docs/benchmarks.md). `EVENT_LOOP=asyncio` keeps the standard loop (uvloop is not built for
Windows; the tests run on asyncio's loop, the process tests on this one).
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A new loop of `kind` ("uvloop" or "asyncio"); asyncio's if uvloop is missing."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("EVENT_LOOP=uvloop but uvloop is not installed: using asyncio's loop")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()
