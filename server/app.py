"""`create_app(settings)`: wiring only. Each surface registers its own routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from server.appkeys import ENGINE, HTTP, SETTINGS
from server.http import health
from server.http.access_log import access_log
from server.http.middlewares import (
    MAX_BODY_BYTES,
    error_envelope,
    request_context,
    security_headers,
)
from server.settings import Settings
from server.storage.db import create_engine
from server.storage.migrate import upgrade


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.migrate_on_start:
        await upgrade(settings.database_url)
    engine = create_engine(settings.database_url)
    app[ENGINE] = engine
    yield
    await engine.dispose()


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    # One pooled client for every call to monday; its timeout is per request (monday/client).
    session = aiohttp.ClientSession(raise_for_status=False)
    app[HTTP] = session
    yield
    await session.close()


def create_app(settings: Settings) -> web.Application:
    """The whole server for `settings`; start it with `web.run_app` or a test client."""
    app = web.Application(
        middlewares=[request_context, access_log, error_envelope, security_headers],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_http_client)
    health.setup(app)
    _setup_surfaces(app)
    return app


def _setup_surfaces(app: web.Application) -> None:
    """Each surface module adds its routes here (one line each)."""
    from server import monday, services
    from server.http import send

    monday.setup(app)  # the monday client, before anything that sends
    if app[SETTINGS].is_dev:
        from server.dev import fake_monday

        fake_monday.setup(app)  # the local monday at /dev/monday (contract §9)
    services.setup(app)  # every service, once (the composition root), and the worker
    from server.http import metrics

    metrics.setup(app)  # GET /metrics (Prometheus)
    send.setup(app)
    from server.http import actions, monday_v2

    monday_v2.setup(app)  # POST /v2, monday-compatible create_notification
    actions.setup(app)  # POST /monday/actions/notify, the automation action
    from server.http import graphql_system, ledger_rest

    ledger_rest.setup(app)  # GET/SEARCH/PATCH/DELETE /notifications (Directus ledger API)
    graphql_system.setup(app)  # POST /graphql/system
    from server.http import mutes

    mutes.setup(app)  # GET/PUT/DELETE /preferences/mutes (contract §12)
    from server.http import websocket

    websocket.setup(app)  # GET /websocket, the ledger in realtime (Directus' protocol)
    from server.http import openapi

    openapi.setup(app)  # GET /openapi.json
    from server.http import installations as installation_routes
    from server.http import oauth as oauth_routes

    installation_routes.setup(app)
    oauth_routes.setup(app)
    from server.http import views

    views.setup(app)  # the board view, widget and settings pages, their assets and CSP
    if app[SETTINGS].is_dev:
        from server.dev import harness

        harness.setup(app)  # GET /dev: the local monday that frames the views
