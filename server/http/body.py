"""Reading request bodies: malformed JSON is a 400 in the envelope, never a 500."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from server import jsonlimits
from server.errors import invalid_payload

M = TypeVar("M", bound=BaseModel)


async def read_json(request: web.Request) -> Any:
    """The decoded JSON body, or 400 INVALID_PAYLOAD (also when nested over 64 levels)."""
    raw = await request.read()
    if not raw:
        raise invalid_payload("The request body is empty; send a JSON document")
    try:
        return jsonlimits.loads(raw)
    except jsonlimits.JsonTooDeep as exc:
        raise invalid_payload(str(exc), max_depth=exc.max_depth) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid_payload(
            f"Malformed JSON: {exc.msg if hasattr(exc, 'msg') else exc}"
        ) from None


def describe_validation_error(error: ValidationError, prefix: str = "") -> tuple[str, str]:
    """(field path, message) of the first problem, e.g. ('[2].recipient', 'must be numeric')."""
    first = error.errors()[0]
    parts: list[str] = []
    for loc in first["loc"]:
        dotted = bool(parts) or bool(prefix)
        parts.append(f"[{loc}]" if isinstance(loc, int) else f".{loc}" if dotted else str(loc))
    field = prefix + "".join(parts)
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return field, message


def parse_model(model: type[M], data: Any, prefix: str = "") -> M:
    """Validate `data` as `model`; 400 INVALID_PAYLOAD naming the field on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        field, message = describe_validation_error(error, prefix)
        raise invalid_payload(f'"{field}" {message}', field=field) from None
