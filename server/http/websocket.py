"""`GET /websocket`: the ledger in realtime, Directus' WebSocket protocol (contract §13).

The protocol lives in `server/realtime/connection.py`; this route checks the per-user limit
when the upgrade already names the caller (an `Authorization` header; browsers cannot send
one, so the limit is checked again at the handshake `auth`), upgrades, and runs the
connection. The change bus (built by the composition root) starts and stops with the app here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

from aiohttp import WSCloseCode, web

from server.appkeys import SERVICES, SETTINGS
from server.errors import ApiError
from server.http.auth import require_session, session_from_token
from server.realtime.connection import RealtimeConnection
from server.realtime.runtime import REALTIME
from server.storage.read_budget import start_request as start_read_budget
from server.tokens import Session


def _caller(request: web.Request) -> Session | None:
    if "Authorization" not in request.headers:
        return None
    try:
        return require_session(request)
    except ApiError:
        return None  # the handshake `auth` answers a bad token in the protocol's own words


async def websocket(request: web.Request) -> web.StreamResponse:
    realtime = request.app[REALTIME]
    limits = realtime.limits
    caller = _caller(request)
    if caller is not None and realtime.hub.connections(caller.account_id, caller.user_id) >= (
        limits.max_connections_per_user
    ):
        raise ApiError(
            429,
            "LIMIT_EXCEEDED",
            f"At most {limits.max_connections_per_user} realtime connections per user.",
        )
    # The connection lives for hours: each of its reads is bounded, not their sum.
    start_read_budget(request.app[SETTINGS].ledger_read_seconds, whole_request=False)
    ws = web.WebSocketResponse(max_msg_size=limits.max_message_bytes, autoping=True)
    await ws.prepare(request)
    connection = RealtimeConnection(
        ws,
        verify=lambda token: session_from_token(request, token),
        ledger=request.app[SERVICES].ledger,
        hub=realtime.hub,
        reads=realtime.reads,
        limits=limits,
        leeway=request.app[SETTINGS].jwt_leeway_seconds,
    )
    # 1001 (going away) at shutdown: Directus' SDK, like any client, reconnects, and the load
    # balancer sends it to an instance that stays up.
    go_away = partial(connection.close, None, WSCloseCode.GOING_AWAY, "server shutting down")
    realtime.hub.opened(go_away)
    try:
        await connection.run()
    finally:
        realtime.hub.ended(go_away)
    return ws


async def _bus(app: web.Application) -> AsyncIterator[None]:
    bus = app[REALTIME].bus
    await bus.start()
    yield
    await bus.stop()


async def _going_away(app: web.Application) -> None:
    # on_shutdown, before aiohttp waits for handlers to end: a socket's handler ends only
    # when the socket closes, so an open one held the exit for aiohttp's whole 60 s timeout.
    app[REALTIME].hub.go_away()


def setup(app: web.Application) -> None:
    """After `services.setup` (the bus is built by the composition root)."""
    app.cleanup_ctx.append(_bus)
    app.on_shutdown.append(_going_away)
    app.router.add_get("/websocket", websocket)
