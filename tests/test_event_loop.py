"""`EVENT_LOOP` (server/http/event_loop.py): uvloop by default, asyncio's loop on request."""

from __future__ import annotations

import asyncio

import uvloop

from server.http.event_loop import new_event_loop
from server.settings import Settings


def test_the_default_loop_is_uvloop_and_asyncio_can_be_chosen() -> None:
    assert Settings().event_loop == "uvloop"
    loop = new_event_loop("uvloop")
    try:
        assert isinstance(loop, uvloop.Loop)
        assert loop.run_until_complete(asyncio.sleep(0, result="ran")) == "ran"
    finally:
        loop.close()
    plain = new_event_loop("asyncio")
    try:
        assert not isinstance(plain, uvloop.Loop)
        assert isinstance(plain, asyncio.AbstractEventLoop)
    finally:
        plain.close()
