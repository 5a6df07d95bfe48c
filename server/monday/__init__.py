"""monday's API: our GraphQL client, error classification, rate-limit headers and OAuth."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.appkeys import HTTP, SETTINGS
from server.monday.client import MONDAY, MondayClient


async def _monday_client(app: web.Application) -> AsyncIterator[None]:
    # Runs after the app's `_http_client` context, so the shared session exists.
    settings = app[SETTINGS]
    app[MONDAY] = MondayClient(
        app[HTTP],
        settings.monday_api_url,
        settings.monday_api_version,
        settings.monday_timeout_seconds,
    )
    yield


def setup(app: web.Application) -> None:
    """Register `app[MONDAY]` (created on start-up from `app[HTTP]` and the settings)."""
    app.cleanup_ctx.append(_monday_client)


__all__ = ["MONDAY", "MondayClient", "setup"]
