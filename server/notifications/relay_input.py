"""What a view reports after running a seamless mutation (`POST /notifications/{id}/relay`).

The report lands in the ledger's `last_error`, which every reader of the ledger sees, so only the
documented fields are kept and each is a bounded string (docs/security.md): the code
and monday's request id are identifiers (too long is refused, cutting would change them); the
message is monday's free text, cut to its bound so that a long refusal is still recorded.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from server.notifications.inputs import storable
from server.notifications.model import DeliveryError, delivery_error

RELAY_CODE_MAX = 64
RELAY_MESSAGE_MAX = 1000
RELAY_REQUEST_ID_MAX = 128
MONDAY_ID_MAX = 64  # the ledger's `monday_id` column
DEFAULT_CODE = "SEAMLESS_ERROR"
DEFAULT_MESSAGE = "monday refused the seamless call."


def _storable(value: str | None) -> str | None:
    """No NUL and no lone surrogates: PostgreSQL cannot store them, and no client needs them."""
    return None if value is None else storable(value)


Code = Annotated[
    str | None, Field(strict=True, max_length=RELAY_CODE_MAX), AfterValidator(_storable)
]
Message = Annotated[str | None, Field(strict=True), AfterValidator(_storable)]
RequestId = Annotated[
    str | None, Field(strict=True, max_length=RELAY_REQUEST_ID_MAX), AfterValidator(_storable)
]
MondayId = Annotated[
    str | None, Field(strict=True, max_length=MONDAY_ID_MAX), AfterValidator(_storable)
]


class RelayError(BaseModel):
    """monday's error as the view saw it; other keys are dropped, never stored."""

    model_config = ConfigDict(extra="ignore")

    code: Code = None
    message: Message = None
    monday_request_id: RequestId = None

    def to_last_error(self) -> DeliveryError:
        message = self.message or DEFAULT_MESSAGE
        if len(message) > RELAY_MESSAGE_MAX:
            message = message[: RELAY_MESSAGE_MAX - 1] + "…"
        return delivery_error(self.code or DEFAULT_CODE, message, self.monday_request_id)


class RelayOutcome(BaseModel):
    """`{"ok": true, "monday_id"?}` or `{"ok": false, "error"?: RelayError}`."""

    model_config = ConfigDict(extra="forbid")

    ok: Annotated[bool, Field(strict=True)]
    monday_id: MondayId = None
    error: RelayError | None = None
