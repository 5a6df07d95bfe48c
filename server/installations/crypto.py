"""Encryption at rest for every stored credential (contract §4).

`ENCRYPTION_KEYS` is a comma-separated list of Fernet keys: the first encrypts, all of
them decrypt, so a new key can be put in front, `monday-notify keys rotate` run, and the
old key removed afterwards.
"""

from __future__ import annotations

from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from server.appkeys import SETTINGS


class CipherError(Exception):
    """A stored value could not be decrypted with any configured key."""


class CredentialCipher:
    """MultiFernet over the configured keys. Never logs or repeats what it handles."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required (ENCRYPTION_KEYS)")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def __repr__(self) -> str:
        return "CredentialCipher(<keys hidden>)"

    def encrypt(self, plaintext: str) -> str:
        """A Fernet token of `plaintext`, made with the first key."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The plaintext of a token made by any configured key; `CipherError` otherwise."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise CipherError(
                "A stored credential cannot be decrypted with the configured ENCRYPTION_KEYS."
            ) from None

    def rotate(self, token: str) -> str:
        """The same plaintext, re-encrypted with the first key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise CipherError(
                "A stored credential cannot be decrypted with the configured ENCRYPTION_KEYS."
            ) from None


CIPHER = web.AppKey("cipher", CredentialCipher)


def setup_cipher(app: web.Application) -> None:
    """Put `app[CIPHER]` (from `settings.fernet_keys`) in the app; a second call does nothing."""
    if CIPHER not in app:
        app[CIPHER] = CredentialCipher(app[SETTINGS].fernet_keys)
