"""A bounded cache of verified session tokens, so a widget polling with the same token does
not pay for the JWT parse and HMAC on every request (docs/security.md, "Session token cache").

Why it is safe: a session token is self-contained; verification is a pure function of the
exact token string, the configured secrets, `client_id`, `app_id`, the size limit and the
time. The cache key holds every input but the time, and the one time-dependent check that can
turn an accepted token into a refused one (`exp` plus the leeway) is made again on every hit,
against the same injectable clock. (`nbf` and `iat` only ever turn a refused token into an
accepted one, and refused tokens are never cached.) A change of secrets or app settings gives
new keys, so nothing verified under the old configuration is served. The key holds a digest of
the secrets, never the secrets themselves.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.tokens import Clock, Session, expired_error, note_secret_match, verify_session

DEFAULT_SIZE = 4096


def _config_digest(
    secrets: Sequence[str],
    client_id: str | None,
    app_id: int | str | None,
    leeway: int,
    max_bytes: int,
) -> bytes:
    """Everything the verification depends on besides the token and the time, as one digest."""
    h = hashlib.sha256()
    for part in (*secrets, "\x00", client_id or "", str(app_id), str(leeway), str(max_bytes)):
        h.update(part.encode())
        h.update(b"\x00")
    return h.digest()


@dataclass
class SessionCache:
    """Token string (+ configuration digest) → verified `Session`, least recently used out."""

    size: int = DEFAULT_SIZE
    hits: int = 0
    misses: int = 0
    _entries: OrderedDict[tuple[bytes, str], Session] = field(default_factory=OrderedDict)
    # The last configuration seen and its digest: hashing the secrets per request would cost
    # about what the cache saves.
    _config: tuple[tuple[str, ...], str | None, str | None, int, int] | None = None
    _digest: bytes = b""

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def verify(
        self,
        token: str,
        *,
        secrets: Sequence[str],
        client_id: str | None,
        app_id: int | str | None,
        leeway: int = 10,
        max_bytes: int = 8192,
        clock: Clock = time.time,
    ) -> Session:
        """`verify_session`'s answer for these arguments; a refused token raises and is not kept."""
        app = None if app_id is None else str(app_id)
        config = (tuple(secrets), client_id, app, leeway, max_bytes)
        if config != self._config:
            digest = _config_digest(secrets, client_id, app_id, leeway, max_bytes)
            self._config, self._digest = config, digest
        key = (self._digest, token)
        session = self._entries.get(key)
        if session is not None:
            if clock() > session.expires_at + leeway:
                del self._entries[key]
                raise expired_error("session")
            self._entries.move_to_end(key)
            self.hits += 1
            note_secret_match("session", session.secret_index)  # the retire-a-secret metric
            return session
        self.misses += 1
        session = verify_session(
            token,
            secrets=secrets,
            client_id=client_id,
            app_id=app_id,
            leeway=leeway,
            max_bytes=max_bytes,
            clock=clock,
        )
        self._entries[key] = session
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return session


# The process' cache (server/http/auth.py). One for every app in the process is safe: entries
# are keyed by their configuration too.
sessions = SessionCache()
