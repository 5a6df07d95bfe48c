"""JSON responses that do not hold the event loop while a large body is serialised."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

# Below this many rows json.dumps takes well under a millisecond per request: not worth a
# thread hop. Above it (up to the 10,000 rows one request may return) it can take tens of
# milliseconds, during which no other request (not even /healthz) would be answered.
OFFLOAD_ROWS = 500


async def json_response(payload: Any, *, rows: int, status: int = 200) -> web.Response:
    """`payload` as JSON; serialised in a worker thread when it may hold `rows` or more."""
    if rows < OFFLOAD_ROWS:
        return web.json_response(payload, status=status)
    text = await asyncio.get_running_loop().run_in_executor(None, json.dumps, payload)
    return web.Response(text=text, status=status, content_type="application/json")
