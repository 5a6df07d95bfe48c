"""Jinja2 set-up for server-rendered pages (views, OAuth callback, dev harness).

`setup_templates(app)` may be called by every surface that renders HTML; only the first
call configures the environment. Autoescaping is on for every template, so anything a
user wrote is rendered as text.
"""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from server.http.assets import TEMPLATES_DIR


def setup_templates(app: web.Application) -> None:
    """Configure aiohttp_jinja2 on `app` once, from the package's `views/templates`, autoescaped."""
    if aiohttp_jinja2.APP_KEY in app:
        return
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
