"""What a ledger write asks for, validated before anything is read or written: row ids from
paths and bodies, and the changes an update may make (contract §7 `status`, §12 `send_at` and
cancelling). Kept apart from `ledger.py`, which applies them with the access rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.clock import utcnow
from server.errors import forbidden, invalid_payload
from server.notifications.fields import MAX_SAFE_INTEGER
from server.notifications.model import LEDGER_STATUSES, DeliveryStatus, LedgerStatus
from server.notifications.query import MAX_LIMIT
from server.notifications.schedule_rules import is_future, parse_send_at

STATUSES = LEDGER_STATUSES
WRITABLE_FIELDS = frozenset({"status"})
# Contract §12: while a row is `scheduled`, its sender or an admin may move or cancel it.
SCHEDULE_FIELDS = frozenset({"send_at", "delivery_status"})
MAX_KEYS = MAX_LIMIT


def parse_key(value: Any, *, field: str = "id") -> int:
    """A primary key from JSON or GraphQL (an integer or a numeric string); 400 otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        key = value
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 16:
        key = int(value.strip())
    else:
        raise invalid_payload(f'"{field}" must be a notification id (an integer)', field=field)
    if key < 1 or key > MAX_SAFE_INTEGER:
        raise invalid_payload(f'"{field}" must be a notification id (an integer)', field=field)
    return key


def parse_keys(values: Any, *, field: str = "keys") -> list[int]:
    """A list of primary keys, duplicates dropped, order kept."""
    if not isinstance(values, list):
        raise invalid_payload(f'"{field}" must be an array of notification ids', field=field)
    if len(values) > MAX_KEYS:
        raise invalid_payload(f'"{field}" can hold at most {MAX_KEYS} ids', field=field)
    keys = [parse_key(v, field=f"{field}[{i}]") for i, v in enumerate(values)]
    return list(dict.fromkeys(keys))


def path_key(raw: str) -> int | None:
    """The id in `/notifications/{id}`; None when it can't be a row (answered as 403)."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 16:
        key = int(raw)
        if 1 <= key <= MAX_SAFE_INTEGER:
            return key
    return None


def validate_changes(data: Any, *, field: str = "data") -> dict[str, Any]:
    """The column values of an update: `status` (`inbox`/`archived`), and on a scheduled row
    `send_at` or a cancel (contract §12). `field` is where `data` sits in the body ("" for
    the body itself, `PATCH /notifications/{id}`).

    Any other field is 403 (a sent notification can't be edited or unsent); a bad status is
    400 INVALID_PAYLOAD.
    """
    if not isinstance(data, Mapping):
        raise invalid_payload(f'"{field or "body"}" must be an object', field=field or "body")
    others = sorted(str(k) for k in data if k not in WRITABLE_FIELDS | SCHEDULE_FIELDS)
    if others:
        raise forbidden(
            f"You don't have permission to change {', '.join(others)}: only status can change "
            "(and, while the notification is scheduled, send_at or delivery_status)."
        )
    changes: dict[str, Any] = {}
    if "status" in data:
        status = data["status"]
        if status not in STATUSES:
            where = _at(field, "status")
            raise invalid_payload(f'"{where}" must be "inbox" or "archived"', field=where)
        changes["status"] = status
    changes.update(_schedule_changes(data, field))
    return changes


def _at(field: str, name: str) -> str:
    """The path of `name` in a body whose changes sit at `field` ("" = the body itself)."""
    return f"{field}.{name}" if field else name


def _schedule_changes(data: Mapping[str, Any], field: str) -> dict[str, Any]:
    """The §12 part of an update as column values: cancel, or a new `send_at`.

    Any `delivery_status` other than "cancelled" is 403 (only the outbox moves rows on);
    a `send_at` follows the send rules again (400 naming it), and one within the last five
    minutes releases the row at once.
    """
    out: dict[str, Any] = {}
    if "delivery_status" in data:
        if data["delivery_status"] != DeliveryStatus.CANCELLED.value:
            raise forbidden(
                'You don\'t have permission to set delivery_status: only "cancelled", '
                "and only while the notification is scheduled."
            )
        if "send_at" in data:
            where = _at(field, "send_at")
            raise invalid_payload(f'"{where}" can\'t be changed while cancelling', field=where)
        out.update(
            delivery_status=DeliveryStatus.CANCELLED.value,
            next_attempt_at=None,
            deferred_reason=None,
        )
    elif "send_at" in data:
        now = utcnow()
        try:
            when = parse_send_at(data["send_at"], now)
        except ValueError as error:
            where = _at(field, "send_at")
            raise invalid_payload(f'"{where}" {error}', field=where) from None
        out.update(send_at=when, next_attempt_at=max(when, now), deferred_reason=None)
        if not is_future(when, now):
            out["delivery_status"] = DeliveryStatus.QUEUED.value
    return out


def split_schedule(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The schedule columns of validated `changes` (empty: a plain status change)."""
    return {k: v for k, v in changes.items() if k != "status"}


def status_of(changes: Mapping[str, Any]) -> LedgerStatus | None:
    status: LedgerStatus | None = changes.get("status")
    return status
