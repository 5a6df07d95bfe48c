"""`GET /openapi.json`: the OpenAPI document of every JSON route (contract §7)."""

from __future__ import annotations

import json

from aiohttp import web

from server.openapi_spec import build_spec

# Built once: the document only depends on the code.
_DOCUMENT = json.dumps(build_spec(), separators=(",", ":"))


async def openapi_json(_request: web.Request) -> web.Response:
    return web.Response(
        text=_DOCUMENT,
        content_type="application/json",
        headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_json)
