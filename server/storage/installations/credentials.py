"""The `credentials` table (the `CredentialStore` port): the only place secrets are
encrypted or decrypted. Secrets go in and come out through the app's `CredentialCipher`;
only Fernet tokens reach the database. Every write bumps the account's revision in the
same transaction (see `accounts.bump_revision`) and tells the in-process listeners.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import utcnow
from server.installations.crypto import CredentialCipher
from server.installations.model import Credential, CredentialKind, CredentialSummary, last4
from server.installations.ports import AccountChanges
from server.storage.installations.accounts import bump_revision, dialect_insert
from server.storage.tables import credentials


def _owner(account_id: str, user_id: str, kind: str) -> Any:
    return and_(
        credentials.c.account_id == account_id,
        credentials.c.user_id == user_id,
        credentials.c.kind == kind,
    )


class SqlCredentials:
    """`CredentialStore` over SQLAlchemy, with the cipher that protects every secret."""

    def __init__(
        self, engine: AsyncEngine, cipher: CredentialCipher, changes: AccountChanges | None = None
    ) -> None:
        self.engine = engine
        self.cipher = cipher
        self.changes = changes or AccountChanges()

    def _credential(self, row: Row[Any]) -> Credential:
        m = row._mapping
        refresh = m["refresh_encrypted"]
        return Credential(
            account_id=m["account_id"],
            user_id=m["user_id"],
            kind=m["kind"],
            secret=self.cipher.decrypt(m["secret_encrypted"]),
            refresh_secret=self.cipher.decrypt(refresh) if refresh else None,
            expires_at=m["expires_at"],
            scope=m["scope"],
            last4=m["last4"],
            verified_at=m["verified_at"],
            needs_reconnect=bool(m["needs_reconnect"]),
            updated_at=m["updated_at"],
        )

    async def get(self, account_id: str, user_id: str, kind: CredentialKind) -> Credential | None:
        """The decrypted credential of `user_id` in `account_id`, `needs_reconnect` ones too."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(credentials).where(_owner(account_id, user_id, kind)))
            ).first()
        return self._credential(row) if row is not None else None

    async def list(self, account_id: str) -> list[CredentialSummary]:
        """Every credential of the account, without decrypting anything."""
        c = credentials.c
        columns = [c.account_id, c.user_id, c.kind, c.last4, c.verified_at]
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(*columns, c.needs_reconnect, c.expires_at)
                    .where(c.account_id == account_id)
                    .order_by(c.kind, c.user_id)
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

    async def put(
        self,
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
        encrypt = self.cipher.encrypt
        values: dict[str, Any] = {
            "secret_encrypted": encrypt(secret),
            "refresh_encrypted": encrypt(refresh_secret) if refresh_secret else None,
            "expires_at": expires_at,
            "scope": scope,
            "last4": last4(secret),
            "verified_at": now,
            "needs_reconnect": False,
            "updated_at": now,
        }
        async with self.engine.begin() as conn:
            stmt = dialect_insert(conn, credentials).values(
                account_id=account_id, user_id=user_id, kind=kind, created_at=now, **values
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["account_id", "user_id", "kind"], set_=values
            )
            await conn.execute(stmt)
            await bump_revision(conn, account_id)
        self.changes.changed(account_id)
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
        self,
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
        owner = _owner(credential.account_id, credential.user_id, credential.kind)
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(credentials).where(owner))).first()
            if row is None:
                return None
            current = self._credential(row)
            if current.refresh_secret != credential.refresh_secret:
                return None
            await conn.execute(
                update(credentials)
                .where(owner)
                .values(
                    secret_encrypted=self.cipher.encrypt(access_token),
                    refresh_encrypted=self.cipher.encrypt(refresh_token) if refresh_token else None,
                    expires_at=expires_at,
                    scope=scope or current.scope,
                    last4=last4(access_token),
                    needs_reconnect=False,
                    updated_at=now,
                )
            )
            await bump_revision(conn, credential.account_id)
        self.changes.changed(credential.account_id)
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
        self, account_id: str, user_id: str, kind: CredentialKind
    ) -> None:
        """monday refused this credential (401): keep it, flagged, until its owner reconnects."""
        now = utcnow()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(credentials)
                .where(_owner(account_id, user_id, kind))
                .values(needs_reconnect=True, updated_at=now)
            )
            if result.rowcount:
                await bump_revision(conn, account_id)
        self.changes.changed(account_id)

    async def delete(self, account_id: str, user_id: str, kind: CredentialKind) -> bool:
        """Remove one credential; True if there was one."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(credentials).where(_owner(account_id, user_id, kind))
            )
            if result.rowcount:
                await bump_revision(conn, account_id)
        self.changes.changed(account_id)
        return bool(result.rowcount)
