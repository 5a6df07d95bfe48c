"""The fake monday's `/_control/` routes: let the harness, demos and tests read and steer it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from server.dev.fake_monday_records import FAILURE_KINDS, ReceivedRequest
from server.dev.fake_monday_state import FAKE_MONDAY, FakeMonday

REDACTED_BODY_FIELDS = frozenset({"client_secret", "refresh_token", "code_verifier"})


def _request_json(fake: FakeMonday, record: ReceivedRequest) -> dict[str, Any]:
    headers = dict(record.headers)
    auth = headers.get("authorization")
    if auth is not None and auth not in fake.tokens:
        headers["authorization"] = "[redacted: not a fake monday token]"
    body = record.body
    if isinstance(body, Mapping):
        body = {k: ("[redacted]" if k in REDACTED_BODY_FIELDS else v) for k, v in body.items()}
    return {
        "method": record.method,
        "path": record.path,
        "headers": headers,
        "body": body,
        "at": record.at.isoformat(),
        "request_id": record.request_id,
        "token_kind": record.token_kind,
        "token_user_id": record.token_user_id,
    }


async def control_requests(request: web.Request) -> web.Response:
    fake = request.app[FAKE_MONDAY]
    return web.json_response({"data": [_request_json(fake, r) for r in fake.requests]})


async def control_notifications(request: web.Request) -> web.Response:
    fake = request.app[FAKE_MONDAY]
    user_id = request.query.get("user_id")
    rows = fake.bell(user_id) if user_id else fake.notifications
    return web.json_response({"data": [n.to_json() for n in rows]})


async def control_users(request: web.Request) -> web.Response:
    fake = request.app[FAKE_MONDAY]
    keys: dict[str, list[str]] = {}
    for token in fake.tokens.values():
        if token.kind == "personal":
            keys.setdefault(token.user_id, []).append(token.token)
    users = [
        {
            "id": u.id,
            "name": u.name,
            "email": u.email,
            "account_id": u.account_id,
            "personal_api_keys": keys.get(u.id, []),
            "time_zone": u.time_zone,
        }
        for u in fake.users.values()
    ]
    return web.json_response({"data": users})


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "expected a JSON object"}')
    return body


async def control_fail(request: web.Request) -> web.Response:
    fake = request.app[FAKE_MONDAY]
    body = await _json_object(request)
    kind = body.pop("kind", None)
    count = body.pop("count", 1)
    try:
        fake.fail_next(str(kind), int(count), **body)
    except (TypeError, ValueError) as exc:
        return web.json_response({"error": str(exc), "kinds": list(FAILURE_KINDS)}, status=400)
    return web.json_response({"data": {"queued": [f.kind for f in fake.failures]}})


async def control_reset(request: web.Request) -> web.Response:
    request.app[FAKE_MONDAY].reset()
    return web.json_response({"data": {"reset": True}})


async def control_budget(request: web.Request) -> web.Response:
    fake = request.app[FAKE_MONDAY]
    body = await _json_object(request)
    budget = body.get("minute_budget")
    if budget is not None and (not isinstance(budget, int) or budget < 0):
        return web.json_response(
            {"error": "minute_budget must be a whole number or null"}, status=400
        )
    fake.minute_budget = budget
    if "window_seconds" in body:
        fake.minute_window_seconds = float(body["window_seconds"])
    return web.json_response({"data": {"minute_budget": fake.minute_budget}})


async def control_time_zone(request: web.Request) -> web.Response:
    """`{"user_id", "time_zone"}`: what monday reports as that dev user's time zone (§12)."""
    fake = request.app[FAKE_MONDAY]
    body = await _json_object(request)
    user_id, zone = str(body.get("user_id", "")), body.get("time_zone")
    if user_id not in fake.users or not (zone is None or isinstance(zone, str)):
        return web.json_response({"error": "unknown user_id or bad time_zone"}, status=400)
    fake.set_time_zone(user_id, zone)
    return web.json_response({"data": {"user_id": user_id, "time_zone": zone}})


def add_control_routes(app: web.Application) -> None:
    app.router.add_get("/_control/requests", control_requests)
    app.router.add_get("/_control/notifications", control_notifications)
    app.router.add_get("/_control/users", control_users)
    app.router.add_post("/_control/fail", control_fail)
    app.router.add_post("/_control/reset", control_reset)
    app.router.add_post("/_control/budget", control_budget)
    app.router.add_post("/_control/time_zone", control_time_zone)
