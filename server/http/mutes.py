"""`GET/PUT/DELETE /preferences/mutes`: the caller mutes this app's notifications to
themselves, entirely or for one target (contract §12). Only ever the caller's own mutes:
a body naming a user is refused, so nobody can mute (or unmute) someone else."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.appkeys import SERVICES
from server.errors import ApiError, invalid_payload
from server.http.auth import require_session
from server.http.body import parse_model, read_json
from server.http.openapi import Operation
from server.notifications.api_types import Collection
from server.notifications.inputs import MondayId
from server.notifications.serialize import iso_datetime
from server.storage.notifications.schedule import Mute, SqlSchedule

# Fields that would name someone else: refused with 400 rather than ignored.
_OTHER_USER = ("user_id", "recipient", "userId")


class MuteTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: Collection
    item: MondayId


class MuteBody(BaseModel):
    """`{"target": null}` mutes everything from this app; a target mutes that item/update."""

    model_config = ConfigDict(extra="forbid")

    target: Annotated[MuteTarget | None, Field(description="null: everything from this app")]


class MuteObject(BaseModel):
    id: int
    target: MuteTarget | None
    created_at: str


def _api(mute: Mute) -> dict[str, Any]:
    target = None
    if mute.collection is not None and mute.item is not None:
        target = {"collection": mute.collection, "item": mute.item}
    return {"id": mute.id, "target": target, "created_at": iso_datetime(mute.created_at)}


def _store(request: web.Request) -> SqlSchedule:
    store = request.app[SERVICES].schedule
    if store is None:  # pragma: no cover - the composition root always wires it
        raise ApiError(503, "SERVICE_UNAVAILABLE", "Mutes are not available.")
    return store


async def _body(request: web.Request) -> MuteBody:
    body = await read_json(request)
    if isinstance(body, dict):
        for name in _OTHER_USER:
            if name in body:
                raise invalid_payload(
                    f'"{name}": mutes are always your own; you can\'t mute for someone else',
                    field=name,
                )
    return parse_model(MuteBody, body)


async def list_mutes(request: web.Request) -> web.Response:
    session = require_session(request)
    mutes = await _store(request).mutes(session.account_id, session.user_id)
    return web.json_response({"data": [_api(mute) for mute in mutes]})


async def put_mute(request: web.Request) -> web.Response:
    session = require_session(request)
    body = await _body(request)
    target = body.target
    mute = await _store(request).add_mute(
        session.account_id,
        session.user_id,
        target.collection if target else None,
        target.item if target else None,
    )
    return web.json_response({"data": _api(mute)})


async def delete_mute(request: web.Request) -> web.Response:
    session = require_session(request)
    body = await _body(request)
    target = body.target
    await _store(request).remove_mute(
        session.account_id,
        session.user_id,
        target.collection if target else None,
        target.item if target else None,
    )
    return web.Response(status=204)


OPENAPI_PATHS = (
    Operation(
        method="get",
        path="/preferences/mutes",
        operation_id="listMutes",
        summary="The caller's own mutes of this app's notifications.",
        tag="preferences",
        ok=list[MuteObject],
        errors=(401,),
    ),
    Operation(
        method="put",
        path="/preferences/mutes",
        operation_id="addMute",
        summary="Mute this app's notifications to yourself: everything or one target.",
        tag="preferences",
        body=MuteBody,
        ok=MuteObject,
        errors=(400, 401, 413),
    ),
    Operation(
        method="delete",
        path="/preferences/mutes",
        operation_id="removeMute",
        summary="Remove one of your mutes (the same body as PUT).",
        tag="preferences",
        body=MuteBody,
        errors=(400, 401, 413),
    ),
)


def setup(app: web.Application) -> None:
    app.router.add_get("/preferences/mutes", list_mutes)
    app.router.add_put("/preferences/mutes", put_mute)
    app.router.add_delete("/preferences/mutes", delete_mute)
