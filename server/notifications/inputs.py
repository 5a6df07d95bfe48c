"""What a caller may ask to send (contract §6), validated before anything is written."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

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


MondayId = Annotated[str, BeforeValidator(_monday_id)]


class NotificationInput(BaseModel):
    """One notification to send: Directus' field names mapped to monday's arguments."""

    model_config = ConfigDict(extra="forbid", strict=False)

    recipient: MondayId
    message: Annotated[str, Field(strict=True, max_length=MAX_MESSAGE_CHARS)]
    collection: Literal["Project", "Post"]
    item: MondayId
    subject: Annotated[str | None, Field(strict=True, max_length=255)] = None
    send_as: Literal["app", "installer"] | None = None

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value
