"""Installations, credentials and OAuth states in the database (SQLAlchemy Core).

Everything here runs on SQLite and PostgreSQL: upserts use each dialect's own
`INSERT ... ON CONFLICT`, which both spell the same way in SQLAlchemy. Secrets go in
and come out through a `CredentialCipher`; only Fernet tokens reach the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.clock import utcnow as utcnow  # re-exported: lifecycle, credentials, oauth_flow
from server.installations.crypto import CredentialCipher
from server.sender import DEFAULT_POLICY, SenderPolicy
from server.storage.tables import credentials, installations, oauth_states

CredentialKind = Literal["api_key", "oauth"]


def last4(secret: str) -> str:
    """The last four characters, the only part of a secret ever shown."""
    return secret[-4:]


@dataclass(frozen=True, slots=True)
class Installation:
    """The app's installation in one monday account."""

    account_id: str
    installed: bool
    installer_user_id: str | None
    sender_policy: str
    app_id: str | None = None
    installer_name: str | None = None
    installer_email: str | None = None
    account_name: str | None = None
    account_slug: str | None = None
    account_tier: str | None = None
    account_max_users: int | None = None
    version: dict[str, Any] | None = None
    subscription: dict[str, Any] | None = None
    last_event_type: str | None = None
    last_event_at: datetime | None = None
    installed_at: datetime | None = None
    uninstalled_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def from_lifecycle(self) -> bool:
        """Whether monday's lifecycle webhook has ever told us about this account."""
        return self.last_event_type is not None


@dataclass(frozen=True, slots=True)
class Credential:
    """A decrypted credential: `secret` is the API token to send as `Authorization`."""

    account_id: str
    user_id: str
    kind: CredentialKind
    secret: str = field(repr=False)
    refresh_secret: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    scope: str | None = None
    last4: str = ""
    verified_at: datetime | None = None
    needs_reconnect: bool = False
    updated_at: datetime | None = None

    @property
    def owner_user_id(self) -> str:
        return self.user_id


@dataclass(frozen=True, slots=True)
class CredentialSummary:
    """What may be shown about a credential: never the secret, only its last 4 characters."""

    account_id: str
    user_id: str
    kind: str
    last4: str
    verified_at: datetime | None
    needs_reconnect: bool
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class OAuthState:
    account_id: str
    user_id: str
    expires_at: datetime
    used_at: datetime | None
    code_verifier_encrypted: str | None = None  # PKCE; None for a state made before it


def dialect_insert(conn: AsyncConnection, table: Any) -> Any:
    """The dialect's INSERT supporting ON CONFLICT (SQLite and PostgreSQL only)."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect: {name}")


# ---- installations ----


def _installation(row: Row[Any]) -> Installation:
    m = row._mapping
    return Installation(
        account_id=m["account_id"],
        installed=bool(m["installed"]),
        installer_user_id=m["installer_user_id"],
        sender_policy=m["sender_policy"] or DEFAULT_POLICY,
        app_id=m["app_id"],
        installer_name=m["installer_name"],
        installer_email=m["installer_email"],
        account_name=m["account_name"],
        account_slug=m["account_slug"],
        account_tier=m["account_tier"],
        account_max_users=m["account_max_users"],
        version=m["version"],
        subscription=m["subscription"],
        last_event_type=m["last_event_type"],
        last_event_at=m["last_event_at"],
        installed_at=m["installed_at"],
        uninstalled_at=m["uninstalled_at"],
        updated_at=m["updated_at"],
    )


async def read_installation(conn: AsyncConnection, account_id: str) -> Installation | None:
    row = (
        await conn.execute(select(installations).where(installations.c.account_id == account_id))
    ).first()
    return _installation(row) if row is not None else None


async def get_installation(engine: AsyncEngine, account_id: str) -> Installation | None:
    """The account's installation, or None when monday never told us about it."""
    async with engine.connect() as conn:
        return await read_installation(conn, account_id)


async def upsert_installation(
    conn: AsyncConnection, account_id: str, values: dict[str, Any], *, now: datetime
) -> None:
    """Create the account's row with `values` or update only those columns of it."""
    values = {**values, "updated_at": now}
    stmt = dialect_insert(conn, installations).values(account_id=account_id, **values)
    stmt = stmt.on_conflict_do_update(index_elements=["account_id"], set_=values)
    await conn.execute(stmt)


async def set_sender_policy(
    engine: AsyncEngine, account_id: str, policy: SenderPolicy, *, now: datetime | None = None
) -> Installation:
    """Store the policy; an account we never heard of gets a row that is not installed."""
    now = now or utcnow()
    async with engine.begin() as conn:
        existing = await read_installation(conn, account_id)
        values: dict[str, Any] = {"sender_policy": policy}
        if existing is None:
            await upsert_installation(conn, account_id, {**values, "installed": False}, now=now)
        else:
            await upsert_installation(conn, account_id, values, now=now)
        result = await read_installation(conn, account_id)
    assert result is not None
    return result


def may_claim_installer(installation: Installation | None) -> bool:
    """The development fallback: no lifecycle event ever arrived and nobody claimed it yet."""
    return installation is None or (
        not installation.from_lifecycle and installation.installer_user_id is None
    )


async def claim_installer(
    engine: AsyncEngine, account_id: str, user_id: str, *, now: datetime | None = None
) -> Installation:
    """Record `user_id` as the installer if the account may still be claimed (see above).

    Returns the installation afterwards; its `installer_user_id` says who won if two
    admins raced (the conditional UPDATE lets only one of them set it).
    """
    now = now or utcnow()
    async with engine.begin() as conn:
        existing = await read_installation(conn, account_id)
        if existing is None:
            stmt = dialect_insert(conn, installations).values(
                account_id=account_id,
                installer_user_id=user_id,
                installed=True,
                installed_at=now,
                sender_policy=DEFAULT_POLICY,
                updated_at=now,
            )
            await conn.execute(stmt.on_conflict_do_nothing(index_elements=["account_id"]))
        elif may_claim_installer(existing):
            await conn.execute(
                update(installations)
                .where(
                    and_(
                        installations.c.account_id == account_id,
                        installations.c.installer_user_id.is_(None),
                        installations.c.last_event_type.is_(None),
                    )
                )
                .values(installer_user_id=user_id, installed=True, installed_at=now, updated_at=now)
            )
        result = await read_installation(conn, account_id)
    assert result is not None
    return result


# ---- credentials ----


def _credential(row: Row[Any], cipher: CredentialCipher) -> Credential:
    m = row._mapping
    refresh = m["refresh_encrypted"]
    return Credential(
        account_id=m["account_id"],
        user_id=m["user_id"],
        kind=m["kind"],
        secret=cipher.decrypt(m["secret_encrypted"]),
        refresh_secret=cipher.decrypt(refresh) if refresh else None,
        expires_at=m["expires_at"],
        scope=m["scope"],
        last4=m["last4"],
        verified_at=m["verified_at"],
        needs_reconnect=bool(m["needs_reconnect"]),
        updated_at=m["updated_at"],
    )


def _owner(account_id: str, user_id: str, kind: str) -> Any:
    return and_(
        credentials.c.account_id == account_id,
        credentials.c.user_id == user_id,
        credentials.c.kind == kind,
    )


async def get_credential(
    engine: AsyncEngine,
    cipher: CredentialCipher,
    account_id: str,
    user_id: str,
    kind: CredentialKind,
) -> Credential | None:
    """The decrypted credential of `user_id` in `account_id`, including `needs_reconnect` ones."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(credentials).where(_owner(account_id, user_id, kind)))
        ).first()
    return _credential(row, cipher) if row is not None else None


async def store_credential(
    engine: AsyncEngine,
    cipher: CredentialCipher,
    *,
    account_id: str,
    user_id: str,
    kind: CredentialKind,
    secret: str,
    refresh_secret: str | None = None,
    expires_at: datetime | None = None,
    scope: str | None = None,
    now: datetime | None = None,
) -> Credential:
    """Encrypt and store (or replace) a verified credential; it is connected afterwards."""
    now = now or utcnow()
    values: dict[str, Any] = {
        "secret_encrypted": cipher.encrypt(secret),
        "refresh_encrypted": cipher.encrypt(refresh_secret) if refresh_secret else None,
        "expires_at": expires_at,
        "scope": scope,
        "last4": last4(secret),
        "verified_at": now,
        "needs_reconnect": False,
        "updated_at": now,
    }
    async with engine.begin() as conn:
        stmt = dialect_insert(conn, credentials).values(
            account_id=account_id, user_id=user_id, kind=kind, created_at=now, **values
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["account_id", "user_id", "kind"], set_=values
        )
        await conn.execute(stmt)
    return Credential(
        account_id=account_id,
        user_id=user_id,
        kind=kind,
        secret=secret,
        refresh_secret=refresh_secret,
        expires_at=expires_at,
        scope=scope,
        last4=last4(secret),
        verified_at=now,
        needs_reconnect=False,
        updated_at=now,
    )


async def replace_oauth_tokens(
    engine: AsyncEngine,
    cipher: CredentialCipher,
    credential: Credential,
    *,
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None,
    scope: str | None,
    now: datetime | None = None,
) -> Credential | None:
    """Swap in refreshed tokens, only if the row still holds the refresh token we used.

    None means another worker refreshed first (its tokens are the ones to use).
    """
    now = now or utcnow()
    refresh_token = refresh_token or credential.refresh_secret
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                select(credentials).where(
                    _owner(credential.account_id, credential.user_id, credential.kind)
                )
            )
        ).first()
        if row is None:
            return None
        current = _credential(row, cipher)
        if current.refresh_secret != credential.refresh_secret:
            return None
        await conn.execute(
            update(credentials)
            .where(_owner(credential.account_id, credential.user_id, credential.kind))
            .values(
                secret_encrypted=cipher.encrypt(access_token),
                refresh_encrypted=cipher.encrypt(refresh_token) if refresh_token else None,
                expires_at=expires_at,
                scope=scope or current.scope,
                last4=last4(access_token),
                needs_reconnect=False,
                updated_at=now,
            )
        )
    return Credential(
        account_id=credential.account_id,
        user_id=credential.user_id,
        kind=credential.kind,
        secret=access_token,
        refresh_secret=refresh_token,
        expires_at=expires_at,
        scope=scope or current.scope,
        last4=last4(access_token),
        verified_at=current.verified_at,
        needs_reconnect=False,
        updated_at=now,
    )


async def mark_needs_reconnect(
    engine: AsyncEngine, account_id: str, user_id: str, kind: CredentialKind
) -> None:
    """monday refused this credential (401): keep it, flagged, until its owner reconnects."""
    async with engine.begin() as conn:
        await conn.execute(
            update(credentials)
            .where(_owner(account_id, user_id, kind))
            .values(needs_reconnect=True, updated_at=utcnow())
        )


async def delete_credential(
    engine: AsyncEngine, account_id: str, user_id: str, kind: CredentialKind
) -> bool:
    """Remove one credential; True if there was one."""
    async with engine.begin() as conn:
        result = await conn.execute(delete(credentials).where(_owner(account_id, user_id, kind)))
    return bool(result.rowcount)


async def delete_account_credentials(conn: AsyncConnection, account_id: str) -> int:
    result = await conn.execute(delete(credentials).where(credentials.c.account_id == account_id))
    return int(result.rowcount or 0)


async def list_credentials(engine: AsyncEngine, account_id: str) -> list[CredentialSummary]:
    """Every credential of the account, without decrypting anything."""
    columns = [
        credentials.c.account_id,
        credentials.c.user_id,
        credentials.c.kind,
        credentials.c.last4,
        credentials.c.verified_at,
        credentials.c.needs_reconnect,
        credentials.c.expires_at,
    ]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(*columns)
                .where(credentials.c.account_id == account_id)
                .order_by(credentials.c.kind, credentials.c.user_id)
            )
        ).all()
    return [
        CredentialSummary(
            account_id=r.account_id,
            user_id=r.user_id,
            kind=r.kind,
            last4=r.last4,
            verified_at=r.verified_at,
            needs_reconnect=bool(r.needs_reconnect),
            expires_at=r.expires_at,
        )
        for r in rows
    ]


# ---- OAuth states ----


async def create_oauth_state(
    engine: AsyncEngine,
    *,
    state_digest: str,
    account_id: str,
    user_id: str,
    now: datetime,
    expires_at: datetime,
    code_verifier_encrypted: str | None = None,
) -> None:
    async with engine.begin() as conn:
        # Expired states are useless; sweeping them here keeps the table small.
        await conn.execute(delete(oauth_states).where(oauth_states.c.expires_at < now))
        await conn.execute(
            oauth_states.insert().values(
                state_digest=state_digest,
                account_id=account_id,
                user_id=user_id,
                created_at=now,
                expires_at=expires_at,
                code_verifier_encrypted=code_verifier_encrypted,
            )
        )


async def consume_oauth_state(
    engine: AsyncEngine, state_digest: str, *, now: datetime
) -> OAuthState | None:
    """Mark the state used and return it; None if unknown, expired or already used.

    The conditional UPDATE makes it single-use even when two callbacks race.
    """
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                select(oauth_states).where(oauth_states.c.state_digest == state_digest)
            )
        ).first()
        if row is None or row.used_at is not None:
            return None
        expires_at: datetime = row.expires_at  # UtcDateTime: always aware, in UTC
        if expires_at <= now:
            return None
        result = await conn.execute(
            update(oauth_states)
            .where(
                and_(
                    oauth_states.c.state_digest == state_digest,
                    oauth_states.c.used_at.is_(None),
                )
            )
            # The verifier is needed once, now: it does not stay stored after that.
            .values(used_at=now, code_verifier_encrypted=None)
        )
        if result.rowcount != 1:
            return None
    return OAuthState(
        account_id=row.account_id,
        user_id=row.user_id,
        expires_at=expires_at,
        used_at=now,
        code_verifier_encrypted=row.code_verifier_encrypted,
    )
