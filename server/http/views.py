"""The pages monday frames (board view, dashboard widget, settings) and their assets.

Pages are rendered with Jinja2 (autoescaped) and carry no inline script: behaviour lives in
ES modules under `server/views/static/js`, and every call they make to the API carries a fresh
session token from the SDK. `monday-sdk-js`, Vibe's design tokens and the Figtree font are
served from the copies shipped in the package (server/http/assets.py; no Node at run time).

Page loads need no token (monday loads them without one and the page asks the SDK). When a
`?sessionToken=` is present it is verified (contract §3); a bad one answers an HTML page that
asks the frame for a fresh token and reloads once.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server.appkeys import SETTINGS
from server.http.assets import STATIC_DIR, vendor_files
from server.http.auth import require_view_session
from server.http.templates import setup_templates
from server.settings import Settings
from server.tokens import TokenError

VIEWS = {
    "board": "Board view",
    "widget": "Dashboard widget",
    "settings": "Settings",
}

# Paths whose responses get the views' Content-Security-Policy.
_FRAMED_PREFIXES = ("/views/", "/static/", "/vendor/")


def frame_ancestors(settings: Settings) -> str:
    """Who may frame our views: FRAME_ANCESTORS, plus ourselves in development (the harness)."""
    ancestors = settings.frame_ancestors.strip() or "'none'"
    if settings.is_dev and "'self'" not in ancestors.split():
        ancestors = f"'self' {ancestors}" if ancestors != "'none'" else "'self'"
    return ancestors


def view_csp(settings: Settings) -> str:
    """The CSP of every page monday frames: our own scripts only, no inline script."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors(settings)}",
        ]
    )


async def _add_csp(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(_FRAMED_PREFIXES):
        response.headers["Content-Security-Policy"] = view_csp(request.app[SETTINGS])
        # Never X-Frame-Options: it would stop monday from framing the views.
        response.headers.popall("X-Frame-Options", None)


def _page_context(request: web.Request, view: str) -> dict[str, Any]:
    return {
        "view": view,
        "title": VIEWS[view],
        "dev": request.app[SETTINGS].is_dev,
    }


async def _view(request: web.Request) -> web.Response:
    view = request.match_info["view"]
    if view not in VIEWS:
        raise web.HTTPNotFound(text="No such view.")
    if "sessionToken" in request.query or request.headers.get("Authorization"):
        try:
            require_view_session(request)
        except TokenError as error:
            # The frame asks the SDK for a fresh token and reloads once (static/js/refresh.js).
            response = aiohttp_jinja2.render_template(
                "refresh.html",
                request,
                {**_page_context(request, view), "code": error.code},
                status=401,
            )
            response.headers["Cache-Control"] = "no-store"
            return response
    response = aiohttp_jinja2.render_template(f"{view}.html", request, _page_context(request, view))
    response.headers["Cache-Control"] = "no-store"
    return response


async def _vendor(request: web.Request) -> web.StreamResponse:
    path = vendor_files().get(request.match_info["path"])
    if path is None or not path.is_file():
        raise web.HTTPNotFound(text="No such asset.")
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


def setup(app: web.Application) -> None:
    """Register the three views, their static assets and the CSP on all of them."""
    setup_templates(app)
    app.router.add_get("/views/{view}", _view, name="view")
    app.router.add_get("/vendor/{path:.+}", _vendor)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=False)
    app.on_response_prepare.append(_add_csp)
