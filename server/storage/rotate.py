"""`monday-notify keys rotate`: re-encrypt every stored secret with the first key.

Put the new key first in ENCRYPTION_KEYS (keeping the old ones after it) on every instance and
restart them, run this, then remove the old keys: everything stored decrypts with the new key
alone afterwards (README, "How credentials are protected").
"""

from __future__ import annotations

from sqlalchemy import select, update

from server.installations.crypto import CipherError, CredentialCipher
from server.settings import Settings
from server.storage.db import create_engine
from server.storage.tables import credentials, oauth_states


class Undecryptable(Exception):
    """Some stored secrets decrypt with none of the keys: nothing was re-encrypted."""

    def __init__(self, failed: int, total: int) -> None:
        super().__init__(f"{failed} of {total} stored secrets cannot be decrypted")
        self.failed = failed
        self.total = total


async def rotate_keys(settings: Settings) -> int:
    """Re-encrypt every credential (access and refresh secrets); return how many rows.

    All or nothing: when any stored secret decrypts with none of the keys (the key it was
    written with was dropped), `Undecryptable` says how many, and the transaction is rolled
    back, so the operator can put that key back and run it again."""
    cipher = CredentialCipher(settings.fernet_keys)
    engine = create_engine(settings.database_url)
    count = failed = total = 0

    def rotated(token: str) -> str | None:
        nonlocal failed, total
        total += 1
        try:
            return cipher.rotate(token)
        except CipherError:
            failed += 1
            return None

    try:
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(
                        credentials.c.id,
                        credentials.c.secret_encrypted,
                        credentials.c.refresh_encrypted,
                    )
                )
            ).all()
            for row in rows:
                secret = rotated(row.secret_encrypted)
                refresh = rotated(row.refresh_encrypted) if row.refresh_encrypted else None
                if failed:
                    continue  # everything is rolled back: only the count matters now
                await conn.execute(
                    update(credentials)
                    .where(credentials.c.id == row.id)
                    .values(secret_encrypted=secret, refresh_encrypted=refresh)
                )
                count += 1
            # PKCE verifiers of flows still in progress (10 minutes at most): without this,
            # removing the old key would break a sign-in that is under way.
            pending = (
                await conn.execute(
                    select(
                        oauth_states.c.state_digest, oauth_states.c.code_verifier_encrypted
                    ).where(oauth_states.c.code_verifier_encrypted.is_not(None))
                )
            ).all()
            for state in pending:
                verifier = rotated(state.code_verifier_encrypted)
                if failed:
                    continue
                await conn.execute(
                    update(oauth_states)
                    .where(oauth_states.c.state_digest == state.state_digest)
                    .values(code_verifier_encrypted=verifier)
                )
            if failed:
                raise Undecryptable(failed, total)  # leaves engine.begin(): rolled back
    finally:
        await engine.dispose()
    return count
