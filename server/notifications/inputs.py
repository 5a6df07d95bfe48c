"""What a caller may ask to send (contract §6), validated before anything is written."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from server.clock import utcnow
from server.ids import MONDAY_ID_SCHEMA, monday_id
from server.notifications.api_types import Collection
from server.notifications.schedule_rules import parse_send_at
from server.sender import SendAs

MAX_BATCH = 500
# monday does not document a limit for `text`; a bell entry longer than this is unreadable.
MAX_MESSAGE_CHARS = 5000


# One id rule everywhere (server/ids.py): "007", " 7", 7.0 and true are refused (400).
MondayId = Annotated[str, BeforeValidator(monday_id), WithJsonSchema(MONDAY_ID_SCHEMA)]


def storable(text: str) -> str:
    """`text` if every database and monday can hold it (contract §10): PostgreSQL refuses
    NUL in text, and a lone surrogate (JSON "\\ud800") is not encodable as UTF-8."""
    if "\x00" in text:
        raise ValueError("must not contain a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text: it contains a lone surrogate") from None
    return text


def _send_at(value: Any) -> datetime | None:
    """Contract §12: with an offset, at most 90 days ahead, at most 5 minutes past."""
    return None if value is None else parse_send_at(value, utcnow())


SendAt = Annotated[
    datetime | None,
    BeforeValidator(_send_at),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}],
            "description": "ISO 8601 with an offset or Z; at most 90 days ahead (§12).",
        }
    ),
]


# A caller's text that will be stored or sent: strict str, its length bounded, no NUL, no lone
# surrogate. (The length sits on the str itself: put beside the validator, pydantic checked it
# as a generic length and said "at most 5000 items".)
MessageText = Annotated[
    str, Field(strict=True, max_length=MAX_MESSAGE_CHARS), AfterValidator(storable)
]
SubjectText = Annotated[str, Field(strict=True, max_length=255), AfterValidator(storable)]


class NotificationInput(BaseModel):
    """One notification to send: Directus' field names mapped to monday's arguments."""

    model_config = ConfigDict(extra="forbid", strict=False)

    recipient: MondayId
    message: Annotated[MessageText, Field(json_schema_extra={"minLength": 1})]
    collection: Collection
    item: MondayId
    subject: SubjectText | None = None
    send_as: SendAs | None = None
    send_at: SendAt = None
    urgent: Annotated[bool, Field(strict=True)] = False

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value
