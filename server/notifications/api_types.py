"""The notification object as the API shows it (contract §6), as types.

The `Literal`s here (and `model.py`'s status types) are the one definition of each field's
values: the input model, the ledger's status check and `GET /openapi.json` all read them.
`API_FIELDS` (`serialize.py`) is the order the fields are rendered in; a test keeps the two
equal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.notifications.model import DeliveryStatus, LedgerStatus
from server.sender import SendAs, Transport

# The ledger status and the delivery status are defined once, with the typed row.
Status = LedgerStatus
Collection = Literal["Project", "Post"]

_MondayId = Annotated[str, Field(pattern=r"^[0-9]+$")]


class LastError(BaseModel):
    """Why the last attempt failed; `code` is ours or monday's."""

    code: str
    message: str
    monday_request_id: str | None = None


class AttemptError(BaseModel):
    """One failed delivery attempt (contract §11): its number (`attempts` counts them all),
    when its outcome was recorded, and its error as `last_error` showed it then."""

    attempt: Annotated[int, Field(ge=1)]
    at: datetime
    code: str
    message: Annotated[str, Field(max_length=500)]
    monday_request_id: str | None = None


class Notification(BaseModel):
    """The notification object."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[int, Field(ge=1, description="Ours (the ledger's primary key).")]
    timestamp: Annotated[datetime, Field(description="When it was created (UTC).")]
    status: Status
    recipient: Annotated[_MondayId, Field(description="monday user id of the recipient.")]
    sender: Annotated[_MondayId, Field(description="monday user id of the caller who asked.")]
    subject: Annotated[str, Field(max_length=255)] | None
    message: Annotated[str, Field(description="The notification text (monday `text`).")]
    collection: Collection
    item: Annotated[_MondayId, Field(description="monday target id (item, board, update).")]
    account_id: Annotated[str, Field(description="The caller's monday account.")]
    sent_as: SendAs | None
    transport: Transport | None
    credential_owner: str | None
    delivery_status: DeliveryStatus
    attempts: Annotated[int, Field(ge=0)]
    next_attempt_at: datetime | None
    sent_at: datetime | None
    last_error: LastError | None
    attempt_errors: Annotated[
        list[AttemptError],
        Field(
            max_length=20,
            description="The error of each failed attempt, oldest first (the latest 20).",
        ),
    ]
    idempotency_key: str | None
    send_at: Annotated[
        datetime | None, Field(description="When the sender asked for it to go out (§12).")
    ]
    urgent: Annotated[bool, Field(description="Ignores quiet hours and digests.")]
    digest_id: Annotated[str | None, Field(description="Shared by the rows of one digest.")]
    deferred_reason: Annotated[
        Literal["quiet_hours"] | None, Field(description="Why a due row is held back.")
    ]


def _no_required(schema: dict[str, Any]) -> None:
    schema.pop("required", None)


class NotificationFields(Notification):
    """A notification restricted to the requested `fields` (any subset of them)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_required)


class Relay(BaseModel):
    """For `transport: seamless`: the mutation the view runs through seamless auth."""

    query: str
    variables: dict[str, Any]


class SentNotification(Notification):
    """The notification object; `relay` when it awaits the view (`awaiting_client`)."""

    relay: Relay | None = None
