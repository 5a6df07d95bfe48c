"""The field catalogue: every public notification field and what kind of value it holds.

One place to add a field (contract §7): filters, `fields`, `sort`, `search`, the GraphQL
types and the OpenAPI shapes all read this table. The operators that act on these kinds are
in `filters.py`.
"""

from __future__ import annotations

from typing import Literal

from server.errors import invalid_query
from server.notifications.serialize import API_FIELDS

MAX_SAFE_INTEGER = 2**53 - 1

Kind = Literal["int", "str", "datetime", "json", "bool"]

FIELD_KINDS: dict[str, Kind] = {
    "id": "int",
    "timestamp": "datetime",
    "status": "str",
    "recipient": "str",
    "sender": "str",
    "subject": "str",
    "message": "str",
    "collection": "str",
    "item": "str",
    "account_id": "str",
    "sent_as": "str",
    "transport": "str",
    "credential_owner": "str",
    "delivery_status": "str",
    "attempts": "int",
    "next_attempt_at": "datetime",
    "sent_at": "datetime",
    "last_error": "json",
    "attempt_errors": "json",
    "idempotency_key": "str",
    "send_at": "datetime",
    "urgent": "bool",
    "digest_id": "str",
    "deferred_reason": "str",
}
assert tuple(FIELD_KINDS) == API_FIELDS  # one list of public fields

# What the integer columns hold on every database (attempts is a 32-bit INTEGER on PostgreSQL,
# so a larger bound parameter would fail there instead of simply not matching).
INT_RANGES: dict[str, tuple[int, int]] = {
    "id": (-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    "attempts": (-(2**31), 2**31 - 1),
}

# `search` looks at text fields; account_id is the caller's own on every row, so it is left
# out (otherwise searching "1001" would match everything).
SEARCH_TEXT_FIELDS = tuple(
    name for name, kind in FIELD_KINDS.items() if kind == "str" and name != "account_id"
)
SEARCH_NUMBER_FIELDS = ("id", "attempts")


def known_field(name: str, what: str) -> str:
    """`name` when it is a notification field; otherwise a 400 saying why it is not."""
    if name in FIELD_KINDS:
        return name
    if "." in name:
        raise invalid_query(f'{what} "{name}" is relational; notifications have no related fields')
    if "(" in name:
        raise invalid_query(f'{what} "{name}" uses a function; functions are not supported')
    raise invalid_query(f'{what} "{name}" doesn\'t exist on notifications')
