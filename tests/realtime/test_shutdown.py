"""SIGTERM with realtime sockets open (contract §13, docs/scaling-out.md "Graceful shutdown"):
a real `python -m server serve` closes every socket with 1001 (going away), so clients
reconnect to another instance, and exits instead of waiting out aiohttp's 60 s shutdown
timeout for handlers that never end on their own."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, WSMsgType

from tests.conftest import FakeMondayServer
from tests.delivery.procs import ServerProcess, seed
from tests.notifications.helpers import MEMBER
from tests.realtime.wire import Wire

# Upper bound for waiting on a condition; the condition, not this, ends the wait. Well
# below aiohttp's 60 s shutdown timeout, which is what a socket left open made us wait.
WITHIN = 30.0


async def close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read until the server closes the socket; the code it closed with."""

    async def loop() -> int | None:
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.CLOSE:
                return int(msg.data)
            if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                return ws.close_code

    try:
        return await asyncio.wait_for(loop(), WITHIN)
    except TimeoutError:
        raise AssertionError(f"the server did not close the socket within {WITHIN} s") from None


async def test_sigterm_closes_realtime_sockets_with_going_away_and_exits(
    tmp_path: Path, empty_database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    await seed(empty_database_url, fake_monday)
    server = ServerProcess(tmp_path / "run", empty_database_url, fake_monday.api_url)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            subscribed = Wire(await http.ws_connect(server.url + "/websocket"))
            assert (await subscribed.auth(mint(user=MEMBER)))["status"] == "ok"
            init = await subscribed.subscribe("s")
            assert init["event"] == "init", init
            # A socket that never sent its `auth` is closed too (not left to its auth timeout).
            silent = await http.ws_connect(server.url + "/websocket")
            # Its upgrade was answered: the server runs its connection.
            assert not silent.closed

            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)

            codes = await asyncio.gather(close_code(subscribed.ws), close_code(silent))
            assert codes == [WSCloseCode.GOING_AWAY, WSCloseCode.GOING_AWAY], server.log_tail()
            returncode = await asyncio.wait_for(server.process.wait(), WITHIN)
        assert returncode == 0, server.log_tail()
        log = server.log_path.read_text()
        assert "Traceback" not in log, log
        records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        assert not [r for r in records if r["level"] in ("error", "critical")], log
    finally:
        await server.kill()
