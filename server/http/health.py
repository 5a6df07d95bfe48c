"""`/healthz` (the process answers) and `/readyz` (the database answers)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from server.appkeys import ENGINE
from server.errors import error_body


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


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
