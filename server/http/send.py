"""`POST /notifications` (create = send) and `POST /notifications/{id}/relay`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from server.appkeys import SERVICES
from server.errors import forbidden, invalid_payload
from server.http.auth import require_session
from server.http.body import parse_model, read_json
from server.http.idempotent import idempotent
from server.http.openapi import ID, IDEMPOTENCY_KEY, Operation
from server.notifications.api_types import Notification as NotificationObject
from server.notifications.api_types import SentNotification
from server.notifications.inputs import MAX_BATCH, NotificationInput
from server.notifications.ledger_input import path_key
from server.notifications.model import DeliveryStatus, Notification
from server.notifications.relay_input import RelayOutcome
from server.notifications.send import SendRequest, relay_payload
from server.notifications.serialize import notification_to_api
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


def api_object(row: Notification) -> dict[str, Any]:
    obj = notification_to_api(row)
    if row.delivery_status == DeliveryStatus.AWAITING_CLIENT:
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
    rows = await request.app[SERVICES].send.send(send_request, items)
    return [api_object(row) for row in rows]


def _answer(rows: Sequence[Notification], many: bool) -> tuple[int, Any]:
    data = [api_object(row) for row in rows]
    return 200, {"data": data if many else data[0]}


async def create_notifications(request: web.Request) -> web.Response:
    session = require_session(request)
    body = await read_json(request)
    items, many = parse_items(body)
    send_request = send_request_for(request, session, "rest")

    async def send() -> tuple[int, Any]:
        return _answer(await request.app[SERVICES].send.send(send_request, items), many)

    async def recover(rows: Sequence[Notification]) -> tuple[int, Any]:
        return _answer(rows, many)

    return await idempotent(
        request,
        account_id=session.account_id,
        user_id=session.user_id,
        key=send_request.idempotency_key,
        body=body,
        work=send,
        recover=recover,
    )


async def relay(request: web.Request) -> web.Response:
    session = require_session(request)
    row_id = path_key(request.match_info["id"])  # out of range (e.g. > 2**63) looks missing
    if row_id is None:
        raise forbidden()
    outcome = parse_model(RelayOutcome, await read_json(request))
    services = request.app[SERVICES]
    updated = await services.send.relay(session.account_id, session.user_id, row_id, outcome)
    return web.json_response({"data": notification_to_api(updated)})


Batch = Annotated[list[NotificationInput], Field(min_length=1, max_length=MAX_BATCH)]
OPENAPI_PATHS = (
    Operation(
        method="post",
        path="/notifications",
        operation_id="createNotifications",
        summary=f"Send one notification or an array of at most {MAX_BATCH} (create = send).",
        tag="send",
        parameters=[IDEMPOTENCY_KEY],
        body=NotificationInput | Batch,
        ok=SentNotification | list[SentNotification],
        ok_description="The ledger rows, with the delivery status reached so far.",
        errors=(400, 401, 403, 409, 413, 422, 429),
    ),
    Operation(
        method="post",
        path="/notifications/{id}/relay",
        operation_id="relayOutcome",
        summary="The outcome of a seamless send, reported by the view that ran it.",
        tag="send",
        parameters=[ID],
        body=RelayOutcome,
        ok=NotificationObject,
        errors=(400, 401, 403, 409, 413),
    ),
)


def setup(app: web.Application) -> None:
    app.router.add_post("/notifications", create_notifications)
    app.router.add_post(r"/notifications/{id}/relay", relay)
