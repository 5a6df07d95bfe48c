"""Every table the product stores, as SQLAlchemy Core tables.

Ids from monday (accounts, users, items) are kept as strings: monday types them `ID`,
and a string never overflows or loses leading context. Secrets are only ever stored
encrypted (`*_encrypted` columns hold Fernet tokens).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so migrations read the same on SQLite and PostgreSQL.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always UTC and always comes back timezone-aware.

    PostgreSQL stores `timestamptz`; SQLite has no timezone type and SQLAlchemy would drop the
    offset (storing 10:00+02:00 as 10:00), so values are converted to UTC before they are bound,
    which also keeps SQLite's text comparisons (`next_attempt_at <= now`) correct. A naive value
    is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BigInteger ids autoincrement on PostgreSQL; SQLite only autoincrements INTEGER.
IdType = BigInteger().with_variant(Integer(), "sqlite")

installations = Table(
    "installations",
    metadata,
    Column("account_id", String(32), primary_key=True),
    Column("app_id", String(32)),
    Column("installer_user_id", String(32)),
    Column("installer_name", String(255)),
    Column("installer_email", String(320)),
    Column("account_name", String(255)),
    Column("account_slug", String(255)),
    Column("account_tier", String(64)),
    Column("account_max_users", Integer),
    Column("version", JSON),
    Column("subscription", JSON),
    Column("last_event_type", String(64)),
    # `data.timestamp` of the newest lifecycle event applied: an older one leaves the account's
    # facts (tier, version, subscription, ...) alone.
    Column("last_event_at", UtcDateTime()),
    # `data.timestamp` of the newest `install` / `uninstall` applied: an older one of those
    # changes neither the installed state nor the credentials (migration 0014).
    Column("install_event_at", UtcDateTime()),
    Column("sender_policy", String(32), nullable=False, server_default="app_then_installer"),
    # Contract §12: quiet hours ("HH:MM" each, both null = off) and the digest window.
    Column("quiet_hours_start", String(5)),
    Column("quiet_hours_end", String(5)),
    Column("digest_window_seconds", Integer, nullable=False, server_default="0"),
    Column("installed", Boolean, nullable=False, server_default="1"),
    Column("installed_at", UtcDateTime()),
    Column("uninstalled_at", UtcDateTime()),
    Column("updated_at", UtcDateTime(), nullable=False),
    # +1 in the same transaction as every change to the account's installation or
    # credentials: a cache of those facts compares it (installations/facts.py).
    Column("revision", BigInteger, nullable=False, server_default="0"),
)

lifecycle_events = Table(
    "lifecycle_events",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    # sha256 of the canonical JSON body: a replayed delivery has the same digest.
    Column("digest", String(64), nullable=False, unique=True),
    Column("account_id", String(32), nullable=False, index=True),
    Column("type", String(64), nullable=False),
    Column("data", JSON, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    # False: older than an event already applied, so recorded but not applied.
    Column("applied", Boolean),
)

credentials = Table(
    "credentials",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("account_id", String(32), nullable=False),
    Column("user_id", String(32), nullable=False),
    # "api_key" (personal token of the installer) or "oauth" (the app's token for that user).
    Column("kind", String(16), nullable=False),
    Column("secret_encrypted", Text, nullable=False),
    Column("refresh_encrypted", Text),
    Column("expires_at", UtcDateTime()),
    Column("scope", String(512)),
    Column("last4", String(4), nullable=False),
    Column("verified_at", UtcDateTime()),
    Column("needs_reconnect", Boolean, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("account_id", "user_id", "kind", name="uq_credentials_owner_kind"),
)

oauth_states = Table(
    "oauth_states",
    metadata,
    # Only a digest of the state is stored: a database reader cannot complete someone's flow.
    Column("state_digest", String(64), primary_key=True),
    Column("account_id", String(32), nullable=False),
    Column("user_id", String(32), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime()),
    # PKCE: the code verifier, Fernet-encrypted (it goes back to monday in clear, so it
    # cannot be a digest); cleared when the state is spent.
    Column("code_verifier_encrypted", Text),
)

# A nullable JSON column whose Python None is SQL NULL. SQLAlchemy's JSON stores None as the
# JSON text `null` by default: a sent row's "no error" then counted in
# `aggregate[count]=last_error` (migration 0013 turned the stored ones into NULL).
NullableJSON = JSON(none_as_null=True)

notifications = Table(
    "notifications",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("timestamp", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False, server_default="inbox"),
    Column("recipient", String(32), nullable=False),
    Column("sender", String(32), nullable=False),
    Column("subject", String(255)),
    Column("message", Text, nullable=False),
    Column("collection", String(16), nullable=False),
    Column("item", String(32), nullable=False),
    Column("account_id", String(32), nullable=False),
    Column("sent_as", String(16)),
    Column("transport", String(16)),
    Column("credential_owner", String(32)),
    Column("delivery_status", String(24), nullable=False, server_default="queued"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime()),
    Column("sent_at", UtcDateTime()),
    Column("last_error", NullableJSON),
    # Every failed attempt's error, oldest first, the latest 20 (contract §11; appended in the
    # statement that records the outcome: storage/notifications/attempt_errors.py).
    Column("attempt_errors", NullableJSON),
    Column("idempotency_key", String(255)),
    # Outbox lease: which worker holds the row and until when (delivery/).
    Column("lease_owner", String(64)),
    Column("lease_expires_at", UtcDateTime()),
    # The monday `create_notification` id, when monday returned one.
    Column("monday_id", String(64)),
    # The monday request the row was last sent in (contract §11): its Idempotency-Key, the
    # batch's row ids in alias order, and when that key was first sent. An `unknown` row is
    # retried with exactly this request while the window since `delivery_request_at` lasts.
    Column("delivery_request_key", String(64), index=True),
    Column("delivery_request_rows", NullableJSON),
    Column("delivery_request_at", UtcDateTime()),
    # Contract §12: when the sender asked for it (None = at once), whether it ignores quiet
    # hours and digests, the digest it went out in, and why it is held back (`quiet_hours`).
    Column("send_at", UtcDateTime()),
    Column("urgent", Boolean, nullable=False, server_default="0"),
    Column("digest_id", String(36)),
    Column("deferred_reason", String(24)),
    # A non-admin's list reads two arms, recipient = me and sender = me (notifications/reads.py),
    # each in sort order from an index: by time (id breaks ties: PostgreSQL needs it spelled
    # out, SQLite keeps the rowid at the end of every index anyway), or by id (Directus' default).
    Index(
        "ix_notifications_account_recipient_status_ts_id",
        "account_id",
        "recipient",
        "status",
        "timestamp",
        "id",
    ),
    Index("ix_notifications_account_recipient_ts_id", "account_id", "recipient", "timestamp", "id"),
    Index("ix_notifications_account_recipient_id", "account_id", "recipient", "id"),
    Index("ix_notifications_account_sender_ts_id", "account_id", "sender", "timestamp", "id"),
    Index("ix_notifications_account_sender_id", "account_id", "sender", "id"),
    # An admin's whole account by time (no recipient or sender to start from).
    Index("ix_notifications_account_ts_id", "account_id", "timestamp", "id"),
    Index("ix_notifications_account_item_ts", "account_id", "item", "timestamp"),
    Index("ix_notifications_due", "delivery_status", "next_attempt_at"),
    Index("ix_notifications_digest", "digest_id"),
)

# A user's mutes of this app's notifications to themselves (contract §12): `target_key` is ""
# for everything, else "<collection>:<item>", so one unique constraint makes PUT idempotent.
mutes = Table(
    "mutes",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("account_id", String(32), nullable=False),
    Column("user_id", String(32), nullable=False),
    Column("target_key", String(64), nullable=False),
    Column("collection", String(16)),
    Column("item", String(32)),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("account_id", "user_id", "target_key", name="uq_mutes_user_target"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", String(32), primary_key=True),
    Column("user_id", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("body_digest", String(64), nullable=False),
    # Null while the first request is still running; then its answer, replayed verbatim.
    Column("response_status", Integer),
    Column("response_body", JSON),
    Column("created_at", UtcDateTime(), nullable=False),
    # The ledger rows the reserving request inserted with the key (same INSERT), in item
    # order: what an abandoned reservation's answer is rebuilt from (migration 0015). NULL
    # for an answer kept without rows (a refusal) and for reservations older than 0015.
    Column("row_ids", NullableJSON),
)

sender_audit = Table(
    "sender_audit",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("account_id", String(32), nullable=False, index=True),
    Column("user_id", String(32), nullable=False),
    Column("surface", String(16), nullable=False),
    Column("send_as_hint", String(16)),
    Column("policy", String(32)),
    Column("outcome", String(32), nullable=False),
    Column("sent_as", String(16)),
    Column("transport", String(16)),
    Column("credential_owner", String(32)),
    Column("reason", Text, nullable=False),
    Column(
        "notification_id",
        IdType,
        ForeignKey("notifications.id", ondelete="SET NULL"),
        nullable=True,
    ),
)

# monday's limits per account as every instance sees them (contract §11, storage/limits.py).
delivery_limits = Table(
    "delivery_limits",
    metadata,
    Column("scope", String(160), primary_key=True),
    Column("paused_until", UtcDateTime()),
    Column("pause_code", String(64)),
    Column("pause_message", String(300)),
    # The window's quota (RateLimit-Policy `q`), what is left of it, and when it resets.
    Column("minute_quota", Integer),
    Column("minute_left", Integer),
    Column("minute_reset", UtcDateTime()),
    # When the current window was rolled over: answers to calls taken before are the old one's.
    Column("minute_since", UtcDateTime()),
    # While the budget is unknown, one call probes it; others wait until it answers.
    Column("probe_until", UtcDateTime()),
    # A user's send-rate bucket (scope `sender:<account>:<user>`): tokens as of `tokens_at`.
    Column("tokens", Float),
    Column("tokens_at", UtcDateTime()),
)

# SQLite: the highest notification id ever deleted (one row, `id` 1). The send path reserves
# ids as max(id) + 1 (storage/notifications/insert.py), which after a delete of the newest rows
# gave their ids to the next ones: a client's retried `DELETE /notifications/6`, or an id it
# kept, then reached a different notification. A trigger (migration 0012) raises this floor
# on every delete, and ids go on above it, as Directus' AUTOINCREMENT ids do. PostgreSQL's
# sequence never gives an id twice: there the row stays as the migration left it.
notification_id_floor = Table(
    "notification_id_floor",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_deleted_id", IdType, nullable=False),
)
