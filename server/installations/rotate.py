"""`monday-notify keys rotate`: re-encrypt every stored secret with the first key.

Put the new key first in ENCRYPTION_KEYS (keeping the old ones after it), run this, then
remove the old keys: everything stored decrypts with the new key alone afterwards.
"""

from __future__ import annotations

from sqlalchemy import select, update

from server.installations.crypto import CredentialCipher
from server.settings import Settings
from server.storage.db import create_engine
from server.storage.tables import credentials


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
    finally:
        await engine.dispose()
    return count
