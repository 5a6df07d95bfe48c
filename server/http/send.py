"""`POST /notifications` (create = send) and `POST /notifications/{id}/relay`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.delivery.setup import SEND
from server.errors import ApiError, forbidden, invalid_payload
from server.http.auth import require_session
from server.http.body import parse_model, read_json
from server.notifications import idempotency
from server.notifications.inputs import MAX_BATCH, NotificationInput
from server.notifications.ledger import path_key
from server.notifications.relay_input import RelayError, RelayOutcome
from server.notifications.send import SendRequest, relay_payload
from server.notifications.serialize import notification_to_api
from server.notifications.store import fetch_row, record_relay
from server.tokens import Session


def parse_items(body: Any) -> tuple[list[NotificationInput], bool]:
    """One object or an array of at most MAX_BATCH; 400 naming the field otherwise."""
    if isinstance(body, dict):
        return [parse_model(NotificationInput, body)], False
    if isinstance(body, list):
        if not body:
            raise invalid_payload("The array of notifications is empty", field="[]")
        if len(body) > MAX_BATCH:
            raise invalid_payload(
                f"At most {MAX_BATCH} notifications can be sent in one request, got {len(body)}",
                field="[]",
            )
        return _parse_each(body), True
    raise invalid_payload("Send a notification object or an array of them", field="body")


def _parse_each(items: list[Any]) -> list[NotificationInput]:
    """Each item validated, a refusal naming it by index (`[1].recipient`)."""
    return [parse_model(NotificationInput, item, prefix=f"[{i}]") for i, item in enumerate(items)]


def api_object(row: dict[str, Any]) -> dict[str, Any]:
    obj = notification_to_api(row)
    if row["delivery_status"] == "awaiting_client":
        obj["relay"] = relay_payload(row)
    return obj


def send_request_for(request: web.Request, session: Session, surface: str) -> SendRequest:
    return SendRequest(
        account_id=session.account_id,
        user_id=session.user_id,
        is_view_only=session.is_view_only,
        is_guest=session.is_guest,
        surface=surface,
        relay_capable=request.headers.get("X-Relay-Capable") == "1",
        idempotency_key=request.headers.get("Idempotency-Key"),
    )


async def send_from_request(
    request: web.Request, session: Session, items: list[dict[str, Any]], *, surface: str
) -> list[dict[str, Any]]:
    """For other surfaces (Directus GraphQL): the same validation and batch limit as REST."""
    parsed, _ = parse_items(items)
    return await _send(request, send_request_for(request, session, surface), parsed)


async def _send(
    request: web.Request, send_request: SendRequest, items: list[NotificationInput]
) -> list[dict[str, Any]]:
    rows = await request.app[SEND].send(send_request, items)
    return [api_object(row) for row in rows]


async def create_notifications(request: web.Request) -> web.Response:
    session = require_session(request)
    body = await read_json(request)
    items, many = parse_items(body)
    send_request = send_request_for(request, session, "rest")
    key = send_request.idempotency_key
    if key is None:
        data = await _send(request, send_request, items)
        return web.json_response({"data": data if many else data[0]})

    idempotency.check_key(key)

    async def send() -> tuple[int, Any]:
        data = await _send(request, send_request, items)
        return 200, {"data": data if many else data[0]}

    status, answer, replayed = await idempotency.once(
        request.app[SEND].engine,
        session.account_id,
        session.user_id,
        key,
        idempotency.body_digest(body),
        send,
    )
    headers = idempotency.REPLAYED_HEADERS if replayed else None
    return web.json_response(answer, status=status, headers=headers)


async def relay(request: web.Request) -> web.Response:
    session = require_session(request)
    row_id = path_key(request.match_info["id"])  # out of range (e.g. > 2**63) looks missing
    if row_id is None:
        raise forbidden()
    outcome = parse_model(RelayOutcome, await read_json(request))
    engine = request.app[SEND].engine
    row = await fetch_row(engine, row_id)
    # Only the user whose view was asked to relay may report; anything else looks missing.
    if row is None or row["account_id"] != session.account_id or row["sender"] != session.user_id:
        raise forbidden()
    if row["delivery_status"] != "awaiting_client":
        raise ApiError(
            409,
            "NOT_AWAITING_CLIENT",
            f"This notification is {row['delivery_status']}, not awaiting a relay.",
        )
    # Only the documented fields, each bounded (notifications/relay_input.py).
    error = None if outcome.ok else (outcome.error or RelayError()).to_last_error()
    if not await record_relay(
        engine, row_id, ok=outcome.ok, monday_id=outcome.monday_id, error=error
    ):
        raise ApiError(
            409, "NOT_AWAITING_CLIENT", "This notification is no longer awaiting a relay."
        )
    updated = await fetch_row(engine, row_id)
    assert updated is not None
    return web.json_response({"data": notification_to_api(updated)})


def setup(app: web.Application) -> None:
    app.router.add_post("/notifications", create_notifications)
    app.router.add_post(r"/notifications/{id}/relay", relay)
