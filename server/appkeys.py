"""Typed keys for what the application holds (aiohttp `web.AppKey`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from server.settings import Settings

if TYPE_CHECKING:
    from server.services import Services

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
HTTP = web.AppKey("http", aiohttp.ClientSession)
# Every service, built once by server/services.py (imported lazily: it imports this module).
SERVICES: web.AppKey[Services] = web.AppKey("services")
