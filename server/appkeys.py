"""Typed keys for what the application holds (aiohttp `web.AppKey`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from server.settings import Settings

if TYPE_CHECKING:
    pass

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
HTTP = web.AppKey("http", aiohttp.ClientSession)
# Filled by the modules that own them; typed as Any here to keep this module import-light.
SERVICES = web.AppKey("services", dict[str, Any])
