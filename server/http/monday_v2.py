"""`POST /v2`: monday's own API shape for `create_notification` (contract §6).

Code written for `monday.api()` or the official `@mondaydotcomorg/api` client works by
pointing it here with a session token. The document is parsed and refused as a whole
before anything is written (server/notifications/v2_parse.py); accepted fields go through
the one send path in a single call, and the answer is shaped like monday's: `data` keyed
by alias with only the selected fields, `extensions.request_id`, top-level `account_id`,
and monday-shaped `errors` (monday-platform.md §5.4).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from server import jsonlimits
from server.appkeys import SERVICES
from server.errors import ApiError
from server.http import shapes
from server.http.auth import require_session
from server.http.idempotent import idempotent
from server.http.openapi import IDEMPOTENCY_KEY, Operation
from server.http.send import send_request_for
from server.logs import request_id_var
from server.notifications.model import NOT_SENT, DeliveryStatus, Notification
from server.notifications.send import relay_payload
from server.notifications.v2_parse import (
    MondayError,
    NotificationField,
    V2Refused,
    parse_notifications,
    read_request,
)
from server.tokens import Session, TokenError

# `unknown`: monday may or may not have executed it; like a gateway timeout.
_STATUS_CODE = {DeliveryStatus.FAILED: 200, DeliveryStatus.UNKNOWN: 504}


def _envelope(
    errors: Sequence[MondayError] | None,
    *,
    account_id: str | None,
    data: dict[str, Any] | None = None,
    include_data: bool = False,
    extra_extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if include_data:
        body["data"] = data
    if errors:
        body["errors"] = [error.to_json() for error in errors]
    body["extensions"] = {"request_id": request_id_var.get(), **(extra_extensions or {})}
    if account_id is not None:
        body["account_id"] = int(account_id)
    return body


def _from_api_error(error: ApiError) -> MondayError:
    return MondayError(error.message, error.code, error.status)


def _field_value(name: str, row: Notification) -> Any:
    if name == "id":
        return str(row.id)
    if name == "text":
        return row.message
    return "Notification"  # __typename, the only other field the schema allows


def render(
    fields: Sequence[NotificationField], rows: Sequence[Notification]
) -> tuple[dict[str, Any], list[MondayError], dict[str, Any]]:
    """`data` by alias, per-alias errors for rows that will not be sent, relay payloads."""
    data: dict[str, Any] = {}
    errors: list[MondayError] = []
    relay: dict[str, Any] = {}
    for item, row in zip(fields, rows, strict=True):
        status = row.delivery_status
        if status in NOT_SENT:
            last = row.last_error or {}
            data[item.key] = None
            errors.append(
                MondayError(
                    str(last.get("message") or "monday did not accept the notification."),
                    str(last.get("code") or "MONDAY_ERROR"),
                    _STATUS_CODE[status],
                    locations=(item.location,) if item.location else (),
                    path=(item.key,),
                    error_data={
                        "notification_id": row.id,
                        "delivery_status": status.value,
                        "monday_request_id": last.get("monday_request_id"),
                    },
                )
            )
            continue
        data[item.key] = {key: _field_value(name, row) for key, name in item.selections}
        if status == DeliveryStatus.AWAITING_CLIENT:
            relay[item.key] = {"id": str(row.id), **relay_payload(row)}
    return data, errors, relay


async def _send(
    request: web.Request, session: Session, fields: Sequence[NotificationField]
) -> tuple[int, dict[str, Any]]:
    if not fields:  # every field was skipped (@skip/@include): nothing to send
        return 200, _envelope(None, account_id=session.account_id, data={}, include_data=True)
    send_request = send_request_for(request, session, "v2")
    try:
        rows = await request.app[SERVICES].send.send(send_request, [f.notification for f in fields])
    except ApiError as refused:  # the sender decision said no: nothing was written
        if refused.status == 429:
            raise  # answered with its Retry-After header by `refused_answer` (key given back)
        return refused.status, _envelope([_from_api_error(refused)], account_id=session.account_id)
    return _answer(session, fields, rows)


def _answer(
    session: Session, fields: Sequence[NotificationField], rows: Sequence[Notification]
) -> tuple[int, dict[str, Any]]:
    """The answer for the rows the send of `fields` wrote, as they are."""
    data, errors, relay = render(fields, rows)
    extra = {"relay": relay} if relay else None
    return 200, _envelope(
        errors, account_id=session.account_id, data=data, include_data=True, extra_extensions=extra
    )


async def monday_v2(request: web.Request) -> web.Response:
    try:
        session = require_session(request)
    except TokenError as error:
        # monday answers a bad token with HTTP 401; the code says which rule failed.
        refusal = _envelope([MondayError(error.message, error.code, 401)], account_id=None)
        return web.json_response(refusal, status=401)
    raw = await request.read()
    try:
        body = jsonlimits.loads(raw) if raw else None
    except jsonlimits.JsonTooDeep as error:
        too_deep = MondayError(f"Invalid payload. {error}.", "INVALID_PAYLOAD", 400)
        return web.json_response(_envelope([too_deep], account_id=session.account_id), status=400)
    except (UnicodeDecodeError, json.JSONDecodeError):
        bad_json = MondayError("Syntax error in JSON input", "JsonParseException", 400)
        return web.json_response(_envelope([bad_json], account_id=session.account_id), status=400)
    try:
        fields = parse_notifications(read_request(body))
    except V2Refused as refused:
        return web.json_response(
            _envelope(refused.errors, account_id=session.account_id),
            status=refused.http_status,
        )

    def refused_answer(error: ApiError) -> web.Response:
        return web.json_response(
            _envelope([_from_api_error(error)], account_id=session.account_id),
            status=error.status,
            headers=error.headers or None,
        )

    async def recover(rows: Sequence[Notification]) -> tuple[int, dict[str, Any]]:
        return _answer(session, fields, rows)

    # `_send` answers refusals itself, except the send limit's 429: an ApiError here is that
    # or the key's (invalid, reused, in flight), answered in monday's shape.
    try:
        return await idempotent(
            request,
            account_id=session.account_id,
            user_id=session.user_id,
            key=request.headers.get("Idempotency-Key"),
            body=body,
            work=lambda: _send(request, session, fields),
            recover=recover,
            refuse=refused_answer,
        )
    except ApiError as error:
        return refused_answer(error)


OPENAPI_PATHS = (
    Operation(
        method="post",
        path="/v2",
        operation_id="mondayV2",
        tag="send",
        summary="monday-compatible `create_notification` (monday's request and answer).",
        parameters=[IDEMPOTENCY_KEY],
        body=shapes.GraphQLRequest,
        example={
            "query": "mutation { create_notification(user_id: 12, target_id: 1, "
            'text: "Build finished", target_type: Project) { id text } }'
        },
        ok=shapes.MondayResponse,
        in_data=False,
        ok_description="monday's answer shape",
        errors=(400, 401, 403, 409, 413, 422, 429),
        error_body=shapes.MondayErrorBody,
        responses={504: (shapes.MondayErrorBody, "monday did not answer")},
    ),
)


def setup(app: web.Application) -> None:
    app.router.add_post("/v2", monday_v2)
