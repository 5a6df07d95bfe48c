"""What a caller may ask to send (contract §6), validated before anything is written."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from server.notifications.api_types import Collection
from server.sender import SendAs

MAX_BATCH = 500
# monday does not document a limit for `text`; a bell entry longer than this is unreadable.
MAX_MESSAGE_CHARS = 5000
MAX_ID_DIGITS = 20


def _monday_id(value: Any) -> str:
    """monday ids: a positive integer or a string of digits (monday types them `ID`)."""
    if isinstance(value, bool):
        raise ValueError("must be a monday id (digits), not a boolean")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("must be a positive monday id")
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise ValueError("must be a monday id made of digits")
        if int(text) == 0:
            raise ValueError("must be a positive monday id")
        text = str(int(text))
    else:
        raise ValueError("must be a monday id (a number or a string of digits)")
    if len(text) > MAX_ID_DIGITS:
        raise ValueError(f"must have at most {MAX_ID_DIGITS} digits")
    return text


# What /openapi.json promises (the validator above is the rule).
MONDAY_ID_SCHEMA = {
    "description": "A monday id: a positive integer or a string of digits.",
    "anyOf": [
        {"type": "string", "pattern": f"^[0-9]{{1,{MAX_ID_DIGITS}}}$"},
        {"type": "integer", "minimum": 1},
    ],
}
MondayId = Annotated[str, BeforeValidator(_monday_id), WithJsonSchema(MONDAY_ID_SCHEMA)]


class NotificationInput(BaseModel):
    """One notification to send: Directus' field names mapped to monday's arguments."""

    model_config = ConfigDict(extra="forbid", strict=False)

    recipient: MondayId
    message: Annotated[
        str,
        Field(strict=True, max_length=MAX_MESSAGE_CHARS, json_schema_extra={"minLength": 1}),
    ]
    collection: Collection
    item: MondayId
    subject: Annotated[str | None, Field(strict=True, max_length=255)] = None
    send_as: SendAs | None = None

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class RelayOutcome(BaseModel):
    """What a view reports after running a seamless mutation itself."""

    model_config = ConfigDict(extra="forbid")

    ok: bool
    monday_id: str | None = None
    error: dict[str, Any] | None = None
