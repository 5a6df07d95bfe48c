"""Routes of the app's OAuth flow (contract §4): `POST /oauth/start`, `GET /oauth/callback`.

The callback carries no session token: the single-use `state` is what binds it to the user
who started the flow. It answers an HTML page (autoescaped), never JSON.
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from server.appkeys import SERVICES, SETTINGS
from server.http import shapes
from server.http.auth import require_session
from server.http.openapi import Operation
from server.http.templates import setup_templates
from server.installations.oauth_flow import CALLBACK_PATH, OAuthFlowError


def _page_headers(request: web.Request) -> dict[str, str]:
    ancestors = request.app[SETTINGS].frame_ancestors.strip() or "'none'"
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
            f"form-action 'none'; frame-ancestors 'self' {ancestors}"
        ),
    }


async def oauth_start(request: web.Request) -> web.Response:
    session = require_session(request)
    url = await request.app[SERVICES].installations.oauth.start(session)
    return web.json_response(
        {"data": {"authorize_url": url}}, headers={"Cache-Control": "no-store"}
    )


def _query_value(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    return value if value else None


async def oauth_callback(request: web.Request) -> web.Response:
    try:
        connected = await request.app[SERVICES].installations.oauth.complete(
            code=_query_value(request, "code"),
            state=_query_value(request, "state"),
            error=_query_value(request, "error"),
        )
    except OAuthFlowError as failure:
        context = {"ok": False, "title": failure.title, "message": failure.message}
        response = aiohttp_jinja2.render_template(
            "oauth_done.html", request, context, status=failure.status
        )
    else:
        name = connected.user_name or f"user {connected.user_id}"
        context = {
            "ok": True,
            "title": "Connected",
            "message": f"The app is connected to monday for {name}.",
        }
        response = aiohttp_jinja2.render_template("oauth_done.html", request, context)
    response.headers.update(_page_headers(request))
    return response


OPENAPI_PATHS = (
    Operation(
        method="post",
        path="/oauth/start",
        operation_id="oauthStart",
        tag="installation",
        summary="Start the app's OAuth flow for the caller.",
        ok=shapes.AuthorizeUrl,
        errors=(401, 403, 409),
    ),
)


def setup(app: web.Application) -> None:
    setup_templates(app)
    app.router.add_post("/oauth/start", oauth_start)
    # GET only: a HEAD (link preview, scanner) must not spend the single-use state.
    app.router.add_get(CALLBACK_PATH, oauth_callback, allow_head=False)
