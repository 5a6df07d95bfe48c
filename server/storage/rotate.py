"""`monday-notify keys rotate`: re-encrypt every stored secret with the first key.

Put the new key first in ENCRYPTION_KEYS (keeping the old ones after it), run this, then
remove the old keys: everything stored decrypts with the new key alone afterwards.
"""

from __future__ import annotations

from sqlalchemy import select, update

from server.installations.crypto import CredentialCipher
from server.settings import Settings
from server.storage.db import create_engine
from server.storage.tables import credentials, oauth_states


async def rotate_keys(settings: Settings) -> int:
    """Re-encrypt every credential (access and refresh secrets); return how many rows."""
    cipher = CredentialCipher(settings.fernet_keys)
    engine = create_engine(settings.database_url)
    count = 0
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
                refresh = row.refresh_encrypted
                await conn.execute(
                    update(credentials)
                    .where(credentials.c.id == row.id)
                    .values(
                        secret_encrypted=cipher.rotate(row.secret_encrypted),
                        refresh_encrypted=cipher.rotate(refresh) if refresh else None,
                    )
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
                await conn.execute(
                    update(oauth_states)
                    .where(oauth_states.c.state_digest == state.state_digest)
                    .values(code_verifier_encrypted=cipher.rotate(state.code_verifier_encrypted))
                )
    finally:
        await engine.dispose()
    return count
