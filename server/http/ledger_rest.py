"""Directus' notifications REST routes over the ledger (contract §7).

Routes only parse the request, call one ledger service function and render the envelope.
`POST /notifications` (the send) is registered by the send surface on the same path.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aiohttp import web

from server.appkeys import SERVICES
from server.clock import utcnow
from server.errors import invalid_payload, invalid_query
from server.http import shapes
from server.http.auth import require_session
from server.http.body import read_json
from server.http.openapi import FIELDS, ID, Operation, query_parameters
from server.http.respond import encoded_json_response
from server.notifications import ledger, ledger_input
from server.notifications.api_types import NotificationFields
from server.notifications.filters import Context
from server.notifications.query import Query, parse_query, parse_url_query
from server.notifications.serialize import project
from server.tokens import Session

NO_CACHE = {"Cache-Control": "no-cache"}


def setup(app: web.Application) -> None:
    """Register the ledger routes (GET, SEARCH, PATCH, DELETE; POST belongs to the send)."""
    app.router.add_route("GET", "/notifications", list_notifications)
    app.router.add_route("SEARCH", "/notifications", search_notifications)
    app.router.add_route("PATCH", "/notifications", patch_notifications)
    app.router.add_route("DELETE", "/notifications", delete_notifications)
    app.router.add_route("GET", "/notifications/{id}", get_notification)
    app.router.add_route("PATCH", "/notifications/{id}", patch_notification)
    app.router.add_route("DELETE", "/notifications/{id}", delete_notification)


def _ledger(request: web.Request) -> ledger.Ledger:
    return request.app[SERVICES].ledger


_LIST, _PAGE = query_parameters(shapes.QueryParameters), shapes.NotificationPage
OPENAPI_PATHS = (
    Operation(
        method="get",
        path="/notifications",
        operation_id="readNotifications",
        tag="ledger",
        summary="List the caller's visible notifications (Directus query parameters).",
        parameters=_LIST,
        ok=_PAGE,
        in_data=False,
        errors=(400, 401),
        ok_description="A page of notifications or aggregates.",
    ),
    Operation(
        method="search",
        path="/notifications",
        tag="ledger",
        summary="SEARCH /notifications: GET with the query in the body, "
        '`{"query": {...}}` (overrides URL parameters) or `{"keys": [...]}`.',
        body=shapes.SearchBody,
        ok=_PAGE,
        in_data=False,
        errors=(400, 401),
    ),
    Operation(
        method="patch",
        path="/notifications",
        operation_id="updateNotifications",
        summary="Archive or un-archive several notifications (all or nothing).",
        tag="ledger",
        parameters=[FIELDS],
        body=shapes.PatchBody,
        ok=list[NotificationFields],
        errors=(400, 401, 403, 413),
    ),
    Operation(
        method="delete",
        path="/notifications",
        operation_id="deleteNotifications",
        summary="Delete ledger rows: `[ids]`, `{keys}` or `{query}` (all or nothing).",
        tag="ledger",
        body=shapes.DeleteBody,
        errors=(400, 401, 403, 413),
    ),
    Operation(
        method="get",
        path="/notifications/{id}",
        operation_id="readNotification",
        summary="One notification; 403 when missing or not visible (never 404).",
        tag="ledger",
        parameters=[ID, FIELDS],
        ok=NotificationFields,
        errors=(400, 401, 403),
    ),
    Operation(
        method="patch",
        path="/notifications/{id}",
        operation_id="updateNotification",
        summary="Change `status` (the only writable field).",
        tag="ledger",
        parameters=[ID, FIELDS],
        body=shapes.StatusData,
        ok=NotificationFields,
        errors=(400, 401, 403, 413),
    ),
    Operation(
        method="delete",
        path="/notifications/{id}",
        operation_id="deleteNotification",
        summary="Delete the ledger row (sender or admin).",
        tag="ledger",
        parameters=[ID],
        errors=(401, 403),
    ),
)


def _context(session: Session) -> Context:
    return Context(user_id=session.user_id, now=utcnow())


def _url_params(request: web.Request) -> dict[str, Any]:
    return parse_url_query(request.query.items())


def _url_query(request: web.Request, session: Session) -> Query:
    pairs = tuple(request.query.items())
    # `$NOW` makes a query depend on the time; a JSON `\u` escape could spell `$NOW` unseen.
    if any("$NOW" in value or "\\u" in value for _key, value in pairs):
        return parse_query(parse_url_query(pairs), _context(session))
    return _parsed(session.user_id, pairs)


@lru_cache(maxsize=512)
def _parsed(user_id: str, pairs: tuple[tuple[str, str], ...]) -> Query:
    """A URL query parsed once per (caller, exact parameters) and then reused, with the SQL it
    has built (a widget polls the same query again and again).

    Safe to share: a Query is immutable, and without `$NOW` it depends only on the parameters
    and `$CURRENT_USER`; the caller's account and role are applied to its SQL per request
    (notifications/reads.py keys its statements by them). Invalid queries raise and are not kept.
    """
    return parse_query(parse_url_query(pairs), Context(user_id=user_id, now=utcnow()))


def _body_object(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid_payload("The body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid_payload(f'"{unknown[0]}" is not allowed here', field=unknown[0])
    if ("keys" in body) == ("query" in body):
        raise invalid_payload('Send exactly one of "keys" or "query"')
    return body


def _write_query(raw: Any, session: Session) -> Query:
    if not isinstance(raw, dict):
        raise invalid_payload('"query" must be an object', field="query")
    query = parse_query(raw, _context(session))
    if query.is_aggregate:
        raise invalid_query("aggregate and groupBy can't be used to choose rows to change")
    return query


def _render_page(page: ledger.Page, *, headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"data": page.data}
    if page.meta is not None:
        body["meta"] = page.meta
    return encoded_json_response(body, headers=headers)


async def list_notifications(request: web.Request) -> web.Response:
    """`GET /notifications` with Directus' global query parameters."""
    session = require_session(request)
    query = _url_query(request, session)
    return _render_page(await _ledger(request).read_by_query(session, query))


async def search_notifications(request: web.Request) -> web.Response:
    """`SEARCH /notifications`: `{"query": {...}}` (overrides URL parameters) or `{"keys"}`."""
    session = require_session(request)
    body = _body_object(await read_json(request), frozenset({"query", "keys"}))
    params = _url_params(request)
    if "query" in body:
        if not isinstance(body["query"], dict):
            raise invalid_payload('"query" must be an object', field="query")
        params.update(body["query"])
        query = parse_query(params, _context(session))
        page = await _ledger(request).read_by_query(session, query)
        return _render_page(page, headers=NO_CACHE)
    keys = ledger_input.parse_keys(body["keys"])
    query = parse_query(params, _context(session))
    data = await _ledger(request).read_many(session, keys, query)
    return encoded_json_response({"data": data}, headers=NO_CACHE)


async def get_notification(request: web.Request) -> web.Response:
    """`GET /notifications/{id}`; 403 when missing or not visible."""
    session = require_session(request)
    query = _url_query(request, session)
    key = ledger_input.path_key(request.match_info["id"])
    item = await _ledger(request).read_one(session, key, query.fields)
    return encoded_json_response({"data": item})


async def patch_notification(request: web.Request) -> web.Response:
    """`PATCH /notifications/{id}` with `{"status": "inbox" | "archived"}`."""
    session = require_session(request)
    query = _url_query(request, session)
    data = await read_json(request)
    key = ledger_input.path_key(request.match_info["id"])
    item = await _ledger(request).update_one(session, key, data)
    return encoded_json_response({"data": project(item, query.fields)}, headers=NO_CACHE)


async def patch_notifications(request: web.Request) -> web.Response:
    """`PATCH /notifications`: `[{id, ...}]`, `{"keys", "data"}` or `{"query", "data"}`."""
    session = require_session(request)
    fields = _url_query(request, session).fields
    service = _ledger(request)
    body = await read_json(request)
    if isinstance(body, list):
        items = await service.update_batch(session, body)
    else:
        body = _body_object(body, frozenset({"keys", "query", "data"}))
        if "data" not in body:
            raise invalid_payload('"data" is required', field="data")
        if "keys" in body:
            keys = ledger_input.parse_keys(body["keys"])
            items = await service.update_many(session, keys, body["data"])
        else:
            query = _write_query(body["query"], session)
            items = await service.update_by_query(session, query, body["data"])
    return encoded_json_response({"data": [project(i, fields) for i in items]}, headers=NO_CACHE)


async def delete_notification(request: web.Request) -> web.Response:
    """`DELETE /notifications/{id}`: 204; the sender or an admin only."""
    session = require_session(request)
    await _ledger(request).delete_one(session, ledger_input.path_key(request.match_info["id"]))
    return web.Response(status=204)


async def delete_notifications(request: web.Request) -> web.Response:
    """`DELETE /notifications`: `[ids]`, `{"keys"}` or `{"query"}`; 204, all or nothing."""
    session = require_session(request)
    service = _ledger(request)
    body = await read_json(request)
    if isinstance(body, list):
        await service.delete_many(session, ledger_input.parse_keys(body, field="body"))
    else:
        body = _body_object(body, frozenset({"keys", "query"}))
        if "keys" in body:
            await service.delete_many(session, ledger_input.parse_keys(body["keys"]))
        else:
            await service.delete_by_query(session, _write_query(body["query"], session))
    return web.Response(status=204)
