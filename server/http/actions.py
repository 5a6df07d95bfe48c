"""`POST /monday/actions/notify`: a custom automation action (contract §6).

monday calls the action's run URL with an integration JWT (`aud` = this URL) and
`{"payload": {"inboundFieldValues": {...}, "inputFields": {...}, "recipeId", "integrationId"},
"runtimeMetadata": {"actionUuid", "triggerUuid"}}`. The notification goes through the one send
path with the request's `shortLivedToken` (surface "automation") and with nothing else:
a request without one fails in the action-error format, nothing sent (contract §10).
Success is 200 `{}`; failures use monday's action-error body (severityCode 4000/6000 with
the notification and activity-log texts) on a 4xx status, plus our own `errors` envelope
(contract §8).

Failures answer 4xx, never 5xx: monday retries an action for 30 minutes on statuses outside
its documented set, and a retry after an `unknown` outcome could notify twice. A retry of
the same run (same `actionUuid`) replays the first answer instead of sending again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from server import jsonlimits
from server.appkeys import SERVICES
from server.clock import utcnow
from server.errors import ApiError
from server.http import shapes
from server.http.auth import require_integration
from server.http.idempotent import idempotent
from server.http.openapi import Operation
from server.notifications.inputs import NotificationInput
from server.notifications.model import DeliveryStatus, Notification
from server.notifications.schedule_rules import AUTOMATION_HORIZON
from server.notifications.send import AUTOMATION, SendRequest
from server.tokens import IntegrationCall, TokenError

MEDIUM = 4000  # this run failed; the next one can succeed
HIGH = 6000  # the recipe will keep failing: monday disables it
TITLE = "The notification was not sent"
# Our field names back to the action's input field names.
_INPUT_OF = {"recipient": "userId", "item": "itemId", "message": "text", "send_at": "sendAt"}


def action_error(
    status: int,
    code: str,
    description: str,
    *,
    runtime: str | None = None,
    severity: int = MEDIUM,
    disable: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """monday's documented action-error body, with our error envelope alongside."""
    body: dict[str, Any] = {
        "severityCode": severity,
        "notificationErrorTitle": TITLE,
        "notificationErrorDescription": description,
        "runtimeErrorDescription": f"{code}: {runtime or description}",
    }
    if severity == HIGH:
        body["disableErrorDescription"] = disable or description
    body["errors"] = [{"message": description, "extensions": {"code": code}}]
    return web.json_response(body, status=status, headers=headers or None)


def _inputs(body: Any) -> dict[str, Any] | None:
    if not isinstance(body, dict) or not isinstance(body.get("payload"), dict):
        return None
    payload = body["payload"]
    for name in ("inboundFieldValues", "inputFields"):
        if isinstance(payload.get(name), dict):
            return dict(payload[name])
    return None


def _notification(inputs: dict[str, Any]) -> NotificationInput | str:
    """The notification the action asks for, or what is wrong with its input fields."""
    target = inputs.get("itemId")
    if target is None:
        target = inputs.get("boardId")
    missing = [
        name
        for name, value in (("userId", inputs.get("userId")), ("itemId", target))
        if value is None or value == ""
    ]
    if inputs.get("text") is None:
        missing.append("text")
    if missing:
        return f"The action is missing its input field(s): {', '.join(missing)}."
    try:
        parsed = NotificationInput(
            recipient=inputs["userId"],
            item=target,
            message=inputs["text"],
            collection="Project",  # an item or a board (monday's target_type Project)
            send_at=inputs.get("sendAt") or None,
        )
    except ValidationError as error:
        first = error.errors()[0]
        ours = str(first["loc"][0]) if first["loc"] else "input"
        name = _INPUT_OF.get(ours, ours)
        if name == "itemId" and inputs.get("itemId") is None:
            name = "boardId"
        problem = str(first["msg"]).removeprefix("Value error, ")
        return f'The action\'s input field "{name}" is invalid: {problem}.'
    if parsed.send_at is not None and parsed.send_at > utcnow() + AUTOMATION_HORIZON:
        return (
            'The action\'s input field "sendAt" is invalid: an automation can schedule at '
            "most 5 minutes ahead (its monday token expires; docs/scheduling.md)."
        )
    return parsed


async def _run(
    request: web.Request, call: IntegrationCall, notification: NotificationInput
) -> web.Response:
    if call.short_lived_token is None:
        # Contract §10: an automation sends with its own short-lived token or not at all,
        # never with the installer's key or someone's OAuth token.
        return action_error(
            409,
            "NO_CREDENTIAL",
            "monday sent this automation without a short-lived token, so it cannot send "
            "notifications: the app's action URLs must use https.",
            runtime="the integration request carried no shortLivedToken",
        )
    send_request = SendRequest(
        account_id=call.account_id,
        user_id=call.user_id,
        surface=AUTOMATION,
        short_lived_token=call.short_lived_token,
    )
    try:
        [row] = await request.app[SERVICES].send.send(send_request, [notification])
    except ApiError as refused:
        if refused.status == 429:
            # The send limit (contract §11): raised, so the run's key is given back (a retry
            # after waiting sends) and the refusal keeps its Retry-After (`_refused`).
            raise
        if refused.code == "APP_NOT_INSTALLED":
            return action_error(
                refused.status,
                refused.code,
                refused.message,
                severity=HIGH,
                disable="The app is not installed on this account: reinstall it to use "
                "this recipe.",
            )
        return action_error(refused.status, refused.code, refused.message)
    return _outcome(row)


def _outcome(row: Notification) -> web.Response:
    """The answer for the run's ledger row, as it is."""
    status = row.delivery_status
    if status == DeliveryStatus.FAILED:
        last = row.last_error or {}
        code = str(last.get("code") or "MONDAY_ERROR")
        return action_error(
            422,
            code,
            "monday refused the notification; check the recipient and the item, then run it again.",
            runtime=f"notification {row.id}: {last.get('message') or 'refused by monday'}",
        )
    if status == DeliveryStatus.UNKNOWN:
        return action_error(
            422,
            "DELIVERY_UNKNOWN",
            "monday did not answer; the notification may already be in the bell. The server "
            "sends the same request again while the automation's token lives, and monday "
            "delivers it at most once: do not run the automation again for it.",
            runtime=f"notification {row.id}: no answer from monday",
        )
    # sent, or retry_scheduled: the delivery worker sends it when monday allows.
    return web.json_response({})


async def notify(request: web.Request) -> web.Response:
    try:
        call = require_integration(request)
    except TokenError as error:
        return action_error(
            401,
            error.code,
            "monday-notify could not verify this automation request.",
            runtime=error.message,
        )
    raw = await request.read()
    try:
        body = jsonlimits.loads(raw) if raw else None
    except jsonlimits.JsonTooDeep as error:
        return action_error(400, "INVALID_PAYLOAD", f"The action request's {error}.")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return action_error(400, "INVALID_PAYLOAD", "The action request is not valid JSON.")
    inputs = _inputs(body)
    if inputs is None:
        return action_error(
            400,
            "INVALID_PAYLOAD",
            'The action request has no "payload" with "inboundFieldValues".',
        )
    notification = _notification(inputs)
    if isinstance(notification, str):
        return action_error(422, "INVALID_PAYLOAD", notification)

    metadata = body.get("runtimeMetadata") if isinstance(body, dict) else None
    run_id = metadata.get("actionUuid") if isinstance(metadata, dict) else None
    if not isinstance(run_id, str) or not run_id or len(run_id) > 200:
        try:
            return await _run(request, call, notification)
        except ApiError as error:
            return _refused(error)

    # actionUuid identifies one execution: a retry by monday replays, it never resends.
    async def run() -> tuple[int, Any]:
        return _status_and_body(await _run(request, call, notification))

    async def recover(rows: Sequence[Notification]) -> tuple[int, Any]:
        return _status_and_body(_outcome(rows[0]))

    # `_run` answers refusals itself but the send limit's 429: an ApiError here is that or
    # the key's (reused, in flight, abandoned), each rendered by `_refused`.
    return await idempotent(
        request,
        account_id=call.account_id,
        user_id=call.user_id,
        key=f"monday-action:{run_id}",
        body=body,
        work=run,
        recover=recover,
        refuse=_refused,
        validate=False,  # the run id was checked above
    )


def _refused(error: ApiError) -> web.Response:
    """A refusal in the action-error format, with its headers (`Retry-After`)."""
    return action_error(error.status, error.code, error.message, headers=error.headers)


def _status_and_body(response: web.Response) -> tuple[int, Any]:
    return response.status, json.loads(response.text or "{}")


OPENAPI_PATHS = (
    Operation(
        method="post",
        path="/monday/actions/notify",
        operation_id="automationNotify",
        summary="The custom automation action (integration token).",
        tag="monday",
        security="integration",
        body=shapes.ActionRequest,
        example={
            "payload": {"inboundFieldValues": {"userId": 12, "itemId": 1, "text": "Done"}},
            "runtimeMetadata": {"actionUuid": "example-run-1"},
        },
        ok=shapes.ActionDone,
        in_data=False,
        ok_description="Sent (or scheduled)",
        errors=(400, 401, 403, 409, 413, 422, 429),
        error_body=shapes.ActionError,
    ),
)


def setup(app: web.Application) -> None:
    app.router.add_post("/monday/actions/notify", notify)
