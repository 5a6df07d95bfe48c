"""The local monday (contract §9): `GET /dev` frames a view and plays monday's part.

The page (views/static/js/harness.js) answers monday-sdk-js' postMessage protocol. What it
cannot do in the browser lives here, under `/dev/api/`, and only in development mode:

- `POST /dev/api/token` mints a session token for a dev user and role with the configured
  client secret (optionally already expired, to exercise the views' retry, or with a chosen
  `lifetime`, to watch the realtime socket re-authenticate);
- `POST /dev/api/seamless` executes an SDK `api()` call against the fake monday as a seamless
  call (so the fake shows it "from the app"); the board's people and items, which the fake
  monday does not model, and `users(ids:)` lookups are answered from the harness' dev data;
- `GET /dev/api/bell` is each dev user's bell from the fake monday's record;
- `POST /dev/api/fail` and `POST /dev/api/reset` steer the fake monday.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import aiohttp_jinja2
from aiohttp import web

from server.appkeys import HTTP, SETTINGS
from server.errors import ApiError, invalid_payload
from server.http.templates import setup_templates
from server.http.views import frame_ancestors
from server.token_mint import mint_session

ROLES = ("admin", "member", "guest", "view_only")
# The role each dev user has by default (see fake_monday_state.DEV_USERS).
DEFAULT_ROLES = {"11": "admin", "12": "member", "13": "guest", "14": "view_only"}
DEV_BOARD: dict[str, Any] = {
    "id": "5001",
    "name": "Launch board",
    "workspace_id": "3001",
    "items": [
        {"id": "7001", "name": "Write the announcement"},
        {"id": "7002", "name": "Ship the release"},
        {"id": "7003", "name": "Tell the customers"},
    ],
}
_BOARDS_QUERY = re.compile(r"^\s*query\b[^{]*\{\s*boards\b", re.DOTALL)
_USERS_QUERY = re.compile(r"^\s*query\b[^{]*\{\s*users\b", re.DOTALL)


def _fake(app: web.Application) -> Any:
    """The fake monday's state (helper module `server.dev.fake_monday`)."""
    from server.dev.fake_monday import FAKE_MONDAY

    return app[FAKE_MONDAY]


def harness_csp() -> str:
    """The harness frames our own views and runs only our own scripts."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "frame-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'self'",
        ]
    )


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise invalid_payload("the body must be JSON") from None
    if not isinstance(body, dict):
        raise invalid_payload("the body must be a JSON object")
    return body


def _users(app: web.Application) -> list[dict[str, Any]]:
    from server.dev.fake_monday_records import DEV_ACCOUNT_ID

    fake = _fake(app)
    return [
        {
            "id": user.id,
            "name": user.name,
            "email": user.email,
            "default_role": DEFAULT_ROLES.get(user.id, "member"),
        }
        for user in fake.users.values()
        if user.account_id == DEV_ACCOUNT_ID
    ]


def _user(app: web.Application, user_id: object) -> Any:
    user = _fake(app).users.get(str(user_id))
    if user is None:
        raise invalid_payload(f"unknown dev user {user_id!r}", field="user")
    return user


async def _page(request: web.Request) -> web.Response:
    response = aiohttp_jinja2.render_template(
        "harness.html", request, {"view": "harness", "title": "Local monday", "dev": True}
    )
    response.headers["Content-Security-Policy"] = harness_csp()
    response.headers["Cache-Control"] = "no-store"
    return response


async def _state(request: web.Request) -> web.Response:
    from server.dev.fake_monday_records import DEV_ACCOUNT_ID, FAILURE_KINDS

    settings = request.app[SETTINGS]
    return web.json_response(
        {
            "data": {
                "account_id": DEV_ACCOUNT_ID,
                "users": _users(request.app),
                "roles": list(ROLES),
                "board": DEV_BOARD,
                "failure_kinds": list(FAILURE_KINDS),
                "client_id": settings.monday_client_id,
                "app_id": settings.monday_app_id,
                "views": ["board", "widget", "settings"],
                "frame_ancestors": frame_ancestors(settings),
            }
        }
    )


def _lifetime(body: dict[str, Any]) -> int:
    """Seconds a minted token lives: monday's 5 minutes, or shorter/longer on request, so the
    views' re-authentication of their realtime socket can be seen without waiting minutes."""
    value = body.get("lifetime", 300)
    if isinstance(value, bool) or not isinstance(value, int) or not 10 <= value <= 3600:
        raise invalid_payload(
            "lifetime must be a whole number of seconds, 10 to 3600", field="lifetime"
        )
    return value


async def _token(request: web.Request) -> web.Response:
    body = await _json_body(request)
    settings = request.app[SETTINGS]
    user = _user(request.app, body.get("user"))
    role = body.get("role", DEFAULT_ROLES.get(user.id, "member"))
    if role not in ROLES:
        raise invalid_payload(f"role must be one of {', '.join(ROLES)}", field="role")
    # An expired token is past exp by more than the leeway, so the server refuses it.
    lifetime = (
        -(settings.jwt_leeway_seconds + 60) if body.get("expired") is True else _lifetime(body)
    )
    token = mint_session(
        settings.client_secrets[0],
        account_id=user.account_id,
        user_id=user.id,
        client_id=settings.monday_client_id,
        app_id=settings.monday_app_id,
        is_admin=role == "admin",
        is_view_only=role == "view_only",
        is_guest=role == "guest",
        lifetime=lifetime,
    )
    return web.json_response({"data": {"token": token, "expires_in": lifetime}})


def _board_answer(variables: dict[str, Any], users: list[dict[str, Any]]) -> dict[str, Any]:
    """monday's answer to a `boards` query, for the harness' dev board."""
    wanted = variables.get("ids")
    ids = [str(i) for i in wanted] if isinstance(wanted, list) else [DEV_BOARD["id"]]
    boards = []
    if DEV_BOARD["id"] in ids:
        boards.append(
            {
                "id": DEV_BOARD["id"],
                "name": DEV_BOARD["name"],
                "subscribers": [{"id": u["id"], "name": u["name"]} for u in users],
                "items_page": {"items": DEV_BOARD["items"]},
            }
        )
    return {"data": {"boards": boards}, "account_id": 1001}


def _users_answer(variables: dict[str, Any], users: list[dict[str, Any]]) -> dict[str, Any]:
    """monday's answer to a `users(ids:)` query for the dev account's users."""
    wanted = variables.get("ids")
    ids = {str(i) for i in wanted} if isinstance(wanted, list) else None
    found = [{"id": u["id"], "name": u["name"]} for u in users if ids is None or u["id"] in ids]
    return {"data": {"users": found}, "account_id": 1001}


async def _seamless(request: web.Request) -> web.Response:
    """Run an SDK `api()` call as monday would for the framed app: a seamless app token."""
    body = await _json_body(request)
    user = _user(request.app, body.get("user"))
    query = body.get("query")
    variables = body.get("variables") or {}
    if not isinstance(query, str) or not query.strip():
        raise invalid_payload("query must be a GraphQL document", field="query")
    if not isinstance(variables, dict):
        raise invalid_payload("variables must be an object", field="variables")
    if _USERS_QUERY.match(query):
        return web.json_response(
            {"data": {"status": 200, "body": _users_answer(variables, _users(request.app))}}
        )
    if _BOARDS_QUERY.match(query):
        return web.json_response(
            {"data": {"status": 200, "body": _board_answer(variables, _users(request.app))}}
        )
    fake = _fake(request.app)
    # One seamless token per dev user, registered so the fake marks its sends "from the app".
    tokens: dict[str, str] = request.app[SEAMLESS_TOKENS]
    token = tokens.get(user.id)
    if token is None or fake.lookup(token) is None:
        token = fake.issue_token(user.id, user.account_id, "seamless")
        tokens[user.id] = token
    headers = {
        "Authorization": token,
        "Content-Type": "application/json",
        "API-Version": str(body.get("apiVersion") or request.app[SETTINGS].monday_api_version),
    }
    url = request.url.with_path("/dev/monday/v2").with_query(None)
    try:
        async with request.app[HTTP].post(
            url,
            json={"query": query, "variables": variables},
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=30),
        ) as answer:
            payload = await answer.json(content_type=None)
            status = answer.status
    except (aiohttp.ClientError, TimeoutError, ValueError):
        payload = {
            "errors": [
                {"message": "The fake monday did not answer.", "extensions": {"code": "TIMEOUT"}}
            ]
        }
        status = 504
    return web.json_response({"data": {"status": status, "body": payload}})


async def _bell(request: web.Request) -> web.Response:
    fake = _fake(request.app)
    bells = []
    for user in _users(request.app):
        entries = [
            {
                "id": n.monday_id,
                "text": n.text,
                "from_app": n.from_app,
                "shown_from": n.shown_from,
                "target_id": n.target_id,
                "target_type": n.target_type,
                "at": n.at.isoformat(),
            }
            for n in fake.bell(user["id"])
        ]
        bells.append({"user": {"id": user["id"], "name": user["name"]}, "notifications": entries})
    return web.json_response({"data": bells})


async def _fail(request: web.Request) -> web.Response:
    body = await _json_body(request)
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool):
        raise invalid_payload("count must be a whole number", field="count")
    try:
        _fake(request.app).fail_next(str(body.get("kind")), count)
    except ValueError as error:
        raise ApiError(400, "INVALID_PAYLOAD", str(error)) from None
    return web.json_response({"data": {"kind": body.get("kind"), "count": count}})


async def _reset(request: web.Request) -> web.Response:
    _fake(request.app).reset()
    request.app[SEAMLESS_TOKENS].clear()
    return web.json_response({"data": {"reset": True}})


SEAMLESS_TOKENS = web.AppKey("harness_seamless_tokens", dict[str, str])


def setup(app: web.Application) -> None:
    """Mount the harness; call only in development mode (it mints tokens on request)."""
    setup_templates(app)
    app[SEAMLESS_TOKENS] = {}
    app.router.add_get("/dev", _page)
    app.router.add_get("/dev/", _page)
    app.router.add_get("/dev/api/state", _state)
    app.router.add_post("/dev/api/token", _token)
    app.router.add_post("/dev/api/seamless", _seamless)
    app.router.add_get("/dev/api/bell", _bell)
    app.router.add_post("/dev/api/fail", _fail)
    app.router.add_post("/dev/api/reset", _reset)
