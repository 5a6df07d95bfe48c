"""Every statement on the `notifications`, `sender_audit` and `idempotency_keys` tables.

One adapter per table family, each over the same engine: `SqlNotificationRows` (the
ledger rows and their audit), `SqlOutbox` (leases and delivery outcomes on the same rows),
`SqlIdempotencyKeys`. Services see them only through `server/notifications/ports.py`.
"""

from server.storage.notifications.idempotency import SqlIdempotencyKeys
from server.storage.notifications.outbox import SqlOutbox, lease_token
from server.storage.notifications.rows import SqlNotificationRows
from server.storage.notifications.visibility import visibility_condition

__all__ = [
    "SqlIdempotencyKeys",
    "SqlNotificationRows",
    "SqlOutbox",
    "lease_token",
    "visibility_condition",
]
