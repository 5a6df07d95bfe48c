"""A raw protocol client for the tests: send JSON, wait for the message that matches."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import ClientWebSocketResponse, WSMsgType

WAIT = 10.0  # an upper bound for a condition, not a synchronisation sleep


class Wire:
    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def until(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The next message for which `match` holds (others are kept in `seen`)."""

        async def loop() -> dict[str, Any]:
            while True:
                msg = await self.ws.receive()
                if msg.type != WSMsgType.TEXT:
                    raise AssertionError(f"socket ended: {msg.type} {self.ws.close_code}")
                data: dict[str, Any] = json.loads(msg.data)
                self.seen.append(data)
                if match(data):
                    return data

        return await asyncio.wait_for(loop(), WAIT)

    async def closed(self) -> int | None:
        """Read until the server closes; the code of its close frame."""

        async def loop() -> int | None:
            while True:
                msg = await self.ws.receive()
                if msg.type == WSMsgType.TEXT:
                    self.seen.append(json.loads(msg.data))
                elif msg.type == WSMsgType.CLOSE:
                    return int(msg.data)
                elif msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                    return self.ws.close_code

        return await asyncio.wait_for(loop(), WAIT)

    async def auth(self, token: str) -> dict[str, Any]:
        await self.send({"type": "auth", "access_token": token})
        return await self.until(lambda m: m["type"] == "auth")

    async def subscribe(self, uid: str, **extra: Any) -> dict[str, Any]:
        body = {"type": "subscribe", "collection": "directus_notifications", "uid": uid, **extra}
        await self.send(body)
        return await self.until(lambda m: m.get("uid") == uid)

    async def event(self, uid: str, event: str) -> dict[str, Any]:
        return await self.until(
            lambda m: m.get("uid") == uid and m.get("event") == event and m["type"] != "error"
        )


def is_event(uid: str, event: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("uid") == uid and m.get("event") == event


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for `condition` to hold: a state the server reaches asynchronously."""

    async def loop() -> None:
        while not condition():  # noqa: ASYNC110 (server state, not an event we can await)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), WAIT)
