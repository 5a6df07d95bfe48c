"""The `oauth_states` table (the `OAuthStateStore` port).

Only a digest of each state is stored, with the account and user who started the flow;
the PKCE verifier is encrypted here with the app's cipher and decrypted only when the
state is spent (then it is cleared from the row).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Delete, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from server.installations.crypto import CipherError, CredentialCipher
from server.installations.model import OAuthState
from server.storage.tables import oauth_states

# Sign-ins one user may have under way at once (several tabs); starting another ends the
# oldest. Without a bound, one caller could fill the table with states (each lives 10 min).
MAX_PENDING_PER_USER = 5


class SqlOAuthStates:
    """`OAuthStateStore` over SQLAlchemy."""

    def __init__(self, engine: AsyncEngine, cipher: CredentialCipher) -> None:
        self.engine = engine
        self.cipher = cipher

    async def create(
        self,
        *,
        state_digest: str,
        account_id: str,
        user_id: str,
        code_verifier: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        verifier = self.cipher.encrypt(code_verifier) if code_verifier is not None else None
        async with self.engine.begin() as conn:
            # Expired states are useless; sweeping them here keeps the table small.
            await conn.execute(delete(oauth_states).where(oauth_states.c.expires_at < now))
            await conn.execute(_older_pending(account_id, user_id))
            await conn.execute(
                oauth_states.insert().values(
                    state_digest=state_digest,
                    account_id=account_id,
                    user_id=user_id,
                    created_at=now,
                    expires_at=expires_at,
                    code_verifier_encrypted=verifier,
                )
            )

    async def consume(self, state_digest: str, *, now: datetime) -> OAuthState | None:
        """Mark the state used and return it; None if unknown, expired or already used.

        The conditional UPDATE makes it single-use even when two callbacks race.
        """
        async with self.engine.begin() as conn:
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
        verifier: str | None = None
        unreadable = False
        if row.code_verifier_encrypted is not None:
            try:
                verifier = self.cipher.decrypt(row.code_verifier_encrypted)
            except CipherError:
                unreadable = True  # ENCRYPTION_KEYS changed during the flow
        return OAuthState(
            account_id=row.account_id,
            user_id=row.user_id,
            expires_at=expires_at,
            used_at=now,
            code_verifier=verifier,
            verifier_unreadable=unreadable,
        )


def _older_pending(account_id: str, user_id: str) -> Delete:
    """The user's pending states but the newest `MAX_PENDING_PER_USER - 1`."""
    t = oauth_states.c
    mine = and_(t.account_id == account_id, t.user_id == user_id, t.used_at.is_(None))
    newest = (
        select(t.state_digest)
        .where(mine)
        .order_by(t.created_at.desc())
        .limit(MAX_PENDING_PER_USER - 1)
    )
    return delete(oauth_states).where(mine, t.state_digest.not_in(newest.scalar_subquery()))
