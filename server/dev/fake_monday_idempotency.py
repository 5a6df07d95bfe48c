"""The fake monday's `Idempotency-Key` memory (monday-platform.md, "Added 2026-11-28").

monday caches the first answer to a keyed mutation for 30 minutes and replays it with
`Idempotency-Replayed: true` (nothing runs twice); a duplicate that arrives while the first
is still being served gets 409 with `Retry-After`.

What the fake assumes where monday's page is silent (recorded here so tests and demos agree):

- Keys are scoped per account (the token's account), like monday's other per-account state.
- What is cached is the answer of the *execution*: when monday ran the mutation and then
  failed on the way back (the `execute-then-*` faults, `server_error` with `executes`), the
  replay is the answer the execution produced, which is why a retry recovers the outcome.
- An answer given without executing (a 429 of any kind, a 5xx that ran nothing, 401) is not
  cached: the key is free again and the next attempt runs.
- The same key with a different body is 422 `IDEMPOTENCY_KEY_REUSED` (as our own API does),
  so a test notices a retry that did not resend the exact request.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

TTL_SECONDS = 30 * 60.0
IN_FLIGHT_RETRY_AFTER = 1
# Headers of the first answer that are about that HTTP message, not its content.
_NOT_REPLAYED = frozenset({"content-length", "date", "server", "transfer-encoding"})


@dataclass
class CachedAnswer:
    status: int
    body: bytes
    headers: dict[str, str]
    content_type: str


@dataclass
class _Entry:
    digest: str
    started: float
    answer: CachedAnswer | None = None  # None while the first request is in flight


@dataclass
class IdempotencyCache:
    clock: Callable[[], float] = time.monotonic
    ttl_seconds: float = TTL_SECONDS
    _entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)

    def clear(self) -> None:
        self._entries.clear()

    def _live(self, scope: tuple[str, str]) -> _Entry | None:
        entry = self._entries.get(scope)
        if entry is not None and self.clock() - entry.started >= self.ttl_seconds:
            del self._entries[scope]
            return None
        return entry

    def begin(self, account: str, key: str, body: bytes) -> web.Response | IdempotencySlot:
        """A replay, a 409/422 answer, or the slot the first request fills in."""
        scope = (account, key)
        digest = hashlib.sha256(body).hexdigest()
        entry = self._live(scope)
        if entry is not None and entry.digest != digest:
            return _error_response(
                422,
                "IDEMPOTENCY_KEY_REUSED",
                "This Idempotency-Key was used with a different request body.",
            )
        if entry is not None and entry.answer is None:
            response = _error_response(
                409,
                "IDEMPOTENCY_REQUEST_IN_FLIGHT",
                "A request with this Idempotency-Key is still being processed.",
            )
            response.headers["Retry-After"] = str(IN_FLIGHT_RETRY_AFTER)
            return response
        if entry is not None and entry.answer is not None:
            return replay(entry.answer)
        self._entries[scope] = _Entry(digest=digest, started=self.clock())
        return IdempotencySlot(self, scope)


@dataclass
class IdempotencySlot:
    """The first request of a key: `keep` its execution's answer, or `release` the key."""

    cache: IdempotencyCache
    scope: tuple[str, str]

    def keep(self, response: web.Response) -> None:
        entry = self.cache._entries.get(self.scope)
        if entry is None or entry.answer is not None:
            return
        body = response.body
        entry.answer = CachedAnswer(
            status=response.status,
            body=bytes(body) if isinstance(body, bytes | bytearray) else b"",
            headers={k: v for k, v in response.headers.items() if k.lower() not in _NOT_REPLAYED},
            content_type=response.content_type,
        )

    def release(self) -> None:
        """Nothing was executed: the key is free for the next attempt."""
        entry = self.cache._entries.get(self.scope)
        if entry is not None and entry.answer is None:
            del self.cache._entries[self.scope]


def replay(answer: CachedAnswer) -> web.Response:
    headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-type"}
    headers["Idempotency-Replayed"] = "true"
    return web.Response(
        status=answer.status, body=answer.body, headers=headers, content_type=answer.content_type
    )


def _error_response(status: int, code: str, message: str) -> web.Response:
    error = {
        "message": message,
        "locations": [],
        "extensions": {"code": code, "status_code": status},
    }
    return web.json_response({"errors": [error]}, status=status)
