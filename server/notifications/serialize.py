"""A ledger row as the API shows it: exactly the fields of contract §6, in that order.

Shared by every surface (Directus REST and GraphQL, the send path), so a notification looks
the same wherever it is read. Outbox bookkeeping (`lease_owner`, `lease_expires_at`) and
monday's own id stay internal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from server.notifications.model import Notification

# The public fields, in the order the API lists them.
API_FIELDS: tuple[str, ...] = (
    "id",
    "timestamp",
    "status",
    "recipient",
    "sender",
    "subject",
    "message",
    "collection",
    "item",
    "account_id",
    "sent_as",
    "transport",
    "credential_owner",
    "delivery_status",
    "attempts",
    "next_attempt_at",
    "sent_at",
    "last_error",
    "attempt_errors",
    "idempotency_key",
    "send_at",
    "urgent",
    "digest_id",
    "deferred_reason",
)

DATETIME_FIELDS = frozenset({"timestamp", "next_attempt_at", "sent_at", "send_at"})


def iso_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, microseconds kept so a value can be filtered on exactly.

    SQLite hands back naive datetimes; everything the product stores is UTC, so naive means UTC.
    """
    if value.tzinfo is not UTC:  # UtcDateTime columns already come back in UTC: no conversion
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


def api_value(value: Any) -> Any:
    """A stored value in its JSON form (datetimes as ISO strings, enums as their value)."""
    if isinstance(value, datetime):
        return iso_datetime(value)
    if isinstance(value, StrEnum):
        return value.value
    return value


def notification_to_api(row: Notification | Mapping[str, Any]) -> dict[str, Any]:
    """The Directus object for a `Notification` (or a mapping of column name to value, as
    the ledger's reads select them).

    Missing columns come out as null, so a partial row never breaks the shape. (A list page
    serialises every field of up to 10,000 rows, so this is written for speed: only the
    datetime fields are converted, and only `id` is coerced.)
    """
    if isinstance(row, Notification):
        out = {name: getattr(row, name) for name in API_FIELDS}
    else:
        out = {name: row.get(name) for name in API_FIELDS}
    if out["id"] is not None:
        out["id"] = int(out["id"])
    for name in DATETIME_FIELDS:
        value = out[name]
        if value is not None:
            out[name] = iso_datetime(value)
    out["attempt_errors"] = list(out["attempt_errors"] or ())
    return out


_DATETIME_INDEXES = tuple(i for i, name in enumerate(API_FIELDS) if name in DATETIME_FIELDS)
_ID_INDEX = API_FIELDS.index("id")
_ERRORS_INDEX = API_FIELDS.index("attempt_errors")


def rows_to_api(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """API objects for rows selected as every API column in `API_FIELDS` order (a list page).

    The same objects as `notification_to_api`, built from the row tuples directly: a page is
    read on every poll of every open bell, and the per-field lookups of the mapping form
    were a visible share of a page's cost."""
    out = []
    for row in rows:
        values = list(row)
        if values[_ID_INDEX] is not None:
            values[_ID_INDEX] = int(values[_ID_INDEX])
        for index in _DATETIME_INDEXES:
            value = values[index]
            if value is not None:
                values[index] = iso_datetime(value)
        values[_ERRORS_INDEX] = values[_ERRORS_INDEX] or []  # NULL: a row without failures
        out.append(dict(zip(API_FIELDS, values, strict=True)))
    return out


def project(item: dict[str, Any], fields: tuple[str, ...] | None) -> dict[str, Any]:
    """Only `fields` of an API object (the object itself when `fields` is None), in the asked
    order."""
    if fields is None:
        return item
    return {name: item.get(name) for name in fields}
