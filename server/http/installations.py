"""Routes of contract §4: lifecycle webhook, installation settings, the installer's API key."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.appkeys import SERVICES
from server.errors import invalid_payload
from server.http import shapes
from server.http.auth import require_lifecycle, require_session
from server.http.body import parse_model, read_json
from server.http.installation_schedule import InstallationPatch
from server.http.openapi import Operation
from server.installations.credentials import (
    MAX_API_KEY_CHARS,
    require_policy_admin,
    summary_json,
)
from server.installations.lifecycle import LifecycleEvent
from server.tokens import LIFECYCLE_PATH


class ApiKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    api_key: str = Field(
        min_length=1, max_length=MAX_API_KEY_CHARS, json_schema_extra={"pattern": "^[!-~]+$"}
    )

    @field_validator("api_key")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty: paste your monday personal API token")
        # It becomes the Authorization header of the call to monday: printable ASCII only.
        if not all("!" <= char <= "~" for char in value):
            raise ValueError("must be a monday personal API token (printable ASCII, no spaces)")
        return value


async def lifecycle(request: web.Request) -> web.Response:
    """`POST /monday/lifecycle`: record and apply one event; replays answer 200 too.

    Only for the account the token names (else 403); an event older than the last one
    applied answers 200 with `applied: false`.
    """
    caller = require_lifecycle(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid_payload('The body must be an object {"type", "data"}')
    event = parse_model(LifecycleEvent, body)
    lifecycle_service = request.app[SERVICES].installations.lifecycle
    outcome = await lifecycle_service.handle(body, event, token_account_id=caller.account_id)
    return web.json_response(
        {
            "data": {
                "type": outcome.type,
                "account_id": outcome.account_id,
                "replayed": outcome.replayed,
                "applied": outcome.applied,
            }
        }
    )


async def get_installation_route(request: web.Request) -> web.Response:
    session = require_session(request)
    view = await request.app[SERVICES].installations.installation.view(session)
    return web.json_response({"data": view})


async def patch_installation(request: web.Request) -> web.Response:
    """Any subset of `sender_policy`, `quiet_hours`, `digest_window_seconds` (contract §12)."""
    session = require_session(request)
    service = request.app[SERVICES].installations.installation
    require_policy_admin(session)  # before the body is read: a member learns nothing more
    body = parse_model(InstallationPatch, await read_json(request))
    return web.json_response({"data": await service.change_settings(session, body.change())})


async def put_api_key(request: web.Request) -> web.Response:
    session = require_session(request)
    body = parse_model(ApiKeyBody, await read_json(request))
    service = request.app[SERVICES].installations.installation
    summary = await service.connect_api_key(session, body.api_key)
    return web.json_response({"data": summary_json(summary)})


async def delete_api_key(request: web.Request) -> web.Response:
    session = require_session(request)
    await request.app[SERVICES].installations.installation.disconnect_api_key(session)
    return web.Response(status=204)


OPENAPI_PATHS = (
    Operation(
        method="post",
        path="/monday/lifecycle",
        operation_id="lifecycle",
        tag="monday",
        summary="monday's app lifecycle webhook (lifecycle token).",
        security="lifecycle",
        body=LifecycleEvent,
        ok=shapes.LifecycleRecorded,
        ok_description="Recorded (replays too); `applied` is false for an event older than "
        "the last one applied to the account",
        errors=(400, 401, 403, 413),
    ),
    Operation(
        method="get",
        path="/installation",
        operation_id="readInstallation",
        summary="The caller's account: installation, sender policy, credentials.",
        tag="installation",
        ok=shapes.Installation,
        errors=(401,),
    ),
    Operation(
        method="patch",
        path="/installation",
        operation_id="updateInstallation",
        summary="Set any of the sender policy, quiet hours and digest window (admins only).",
        tag="installation",
        body=InstallationPatch,
        ok=shapes.Installation,
        errors=(400, 401, 403, 413),
    ),
    # The example is the built-in fake monday's key of dev user 11 (`serve --dev`).
    Operation(
        method="put",
        path="/installation/api-key",
        operation_id="putApiKey",
        summary="Store the installing user's personal API key (checked with monday).",
        tag="installation",
        body=ApiKeyBody,
        example={"api_key": "dev-personal-key-user-11"},
        ok=shapes.Credential,
        errors=(400, 401, 403, 409, 413, 422, 502),
    ),
    Operation(
        method="delete",
        path="/installation/api-key",
        operation_id="deleteApiKey",
        summary="Remove the installing user's API key.",
        tag="installation",
        errors=(401, 403),
    ),
)


def setup(app: web.Application) -> None:
    app.router.add_post(LIFECYCLE_PATH, lifecycle)
    app.router.add_get("/installation", get_installation_route)
    app.router.add_patch("/installation", patch_installation)
    app.router.add_put("/installation/api-key", put_api_key)
    app.router.add_delete("/installation/api-key", delete_api_key)
