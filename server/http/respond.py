"""JSON responses that do not hold the event loop while a large body is serialised."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from server import jsonbytes

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


def encoded_json_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """`web.json_response` (same body once parsed, same Content-Type) encoded with orjson: the
    stdlib encoder was a tenth of a list read's time (25 rows of 24 fields); what orjson
    refuses takes the stdlib's way (server/jsonbytes.py)."""
    return web.Response(
        body=jsonbytes.dumps(body),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )
