"""`/healthz` (the process answers) and `/readyz` (the database answers)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from server.appkeys import ENGINE
from server.errors import error_body
from server.http import shapes
from server.http.openapi import Operation


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        async with request.app[ENGINE].connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the store means "not ready"
        return web.json_response(
            error_body("SERVICE_UNAVAILABLE", "The database is not reachable."), status=503
        )
    return web.json_response({"status": "ready"})


OPENAPI_PATHS = (
    Operation(
        method="get",
        path="/healthz",
        operation_id="healthz",
        summary="The process answers.",
        tag="health",
        security="public",
        ok=shapes.Healthy,
        ok_description="Up",
        in_data=False,
    ),
    Operation(
        method="get",
        path="/readyz",
        operation_id="readyz",
        summary="The database answers.",
        tag="health",
        security="public",
        ok=shapes.Ready,
        ok_description="Ready",
        in_data=False,
        errors=(503,),
    ),
)


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
