"""server/token_cache.py: a cached session token is still refused once it expires, is never
served under other secrets or app settings, refused tokens are never kept, and the size is
bounded (docs/security.md, "Session token cache")."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from server import tokens
from server.token_cache import SessionCache
from server.tokens import TokenError, mint_session
from tests.conftest import CLIENT_ID, CLIENT_SECRET, OLD_CLIENT_SECRET

NOW = 1_800_000_000.0
LEEWAY = 10


class Clock:
    """The injectable clock of server/tokens.py, moved by the test."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def token(user_id: int = 11, *, secret: str = CLIENT_SECRET, lifetime: int = 300) -> str:
    return mint_session(
        secret, account_id=1001, user_id=user_id, client_id=CLIENT_ID, lifetime=lifetime, now=NOW
    )


def verify(cache: SessionCache, value: str, clock: Clock, **kwargs: Any) -> tokens.Session:
    options: dict[str, Any] = {
        "secrets": [CLIENT_SECRET],
        "client_id": CLIENT_ID,
        "app_id": None,
        "leeway": LEEWAY,
        "clock": clock,
    }
    options.update(kwargs)
    return cache.verify(value, **options)


def test_a_repeated_token_is_served_from_the_cache_with_the_same_session() -> None:
    cache, clock = SessionCache(), Clock()
    first = verify(cache, token(), clock)
    matches = tokens.secret_matches[("session", 0)]
    again = verify(cache, token(), clock)
    assert again == first and again.user_id == "11"
    assert (cache.hits, cache.misses) == (1, 1)
    # The retire-an-old-secret metric still counts a cached token's secret.
    assert tokens.secret_matches[("session", 0)] == matches + 1


def test_an_expired_token_is_refused_even_though_it_was_cached() -> None:
    cache, clock = SessionCache(), Clock()
    value = token(lifetime=300)
    verify(cache, value, clock)
    clock.now = NOW + 300 + LEEWAY  # the last accepted second
    assert verify(cache, value, clock).user_id == "11"
    assert cache.hits == 1
    clock.now = NOW + 300 + LEEWAY + 1
    with pytest.raises(TokenError) as refused:
        verify(cache, value, clock)
    assert (refused.value.status, refused.value.code) == (401, "TOKEN_EXPIRED")
    assert len(cache) == 0  # dropped, and refused again by the full verification
    with pytest.raises(TokenError) as again:
        verify(cache, value, clock)
    assert again.value.code == "TOKEN_EXPIRED"
    assert cache.misses == 2


def test_a_token_verified_under_other_secrets_is_not_served_from_the_cache() -> None:
    cache, clock = SessionCache(), Clock()
    old = token(secret=OLD_CLIENT_SECRET)
    # Accepted while the old secret is still configured (rotation) ...
    verify(cache, old, clock, secrets=[CLIENT_SECRET, OLD_CLIENT_SECRET])
    # ... and refused once it is retired, although the token string is in the cache.
    with pytest.raises(TokenError) as refused:
        verify(cache, old, clock, secrets=[CLIENT_SECRET])
    assert refused.value.code == "TOKEN_INVALID_SIGNATURE"
    assert cache.hits == 0


def test_other_app_settings_verify_again() -> None:
    cache, clock = SessionCache(), Clock()
    value = token()
    verify(cache, value, clock)
    with pytest.raises(TokenError) as refused:
        verify(cache, value, clock, client_id="another-client")
    assert refused.value.code == "TOKEN_WRONG_APP"
    with pytest.raises(TokenError):
        verify(cache, value, clock, app_id=77)
    assert cache.hits == 0


def test_a_refused_token_is_not_cached() -> None:
    cache, clock = SessionCache(), Clock()
    forged = token(secret="not-the-client-secret-at-all-0123456789")
    for _ in range(2):
        with pytest.raises(TokenError) as refused:
            verify(cache, forged, clock)
        assert refused.value.code == "TOKEN_INVALID_SIGNATURE"
    assert len(cache) == 0 and cache.misses == 2
    # Not valid yet: refused now and not kept; verified in full (and accepted) once it is.
    early = jwt.encode(
        {
            "dat": {"client_id": CLIENT_ID, "account_id": 1001, "user_id": 11},
            "nbf": int(NOW) + 100,
            "exp": int(NOW) + 400,
        },
        CLIENT_SECRET,
        algorithm="HS256",
    )
    with pytest.raises(TokenError) as refused:
        verify(cache, early, clock)
    assert refused.value.code == "TOKEN_NOT_YET_VALID"
    assert len(cache) == 0
    clock.now = NOW + 100
    assert verify(cache, early, clock).user_id == "11"
    assert len(cache) == 1 and cache.hits == 0


def test_the_cache_is_bounded_and_keeps_the_recently_used() -> None:
    cache, clock = SessionCache(size=3), Clock()
    values = [token(user_id=100 + i) for i in range(5)]
    verify(cache, values[0], clock)
    verify(cache, values[1], clock)
    verify(cache, values[2], clock)
    verify(cache, values[0], clock)  # used again: now the most recent
    verify(cache, values[3], clock)  # evicts values[1], the least recently used
    verify(cache, values[4], clock)  # evicts values[2]
    assert len(cache) == 3
    hits = cache.hits
    verify(cache, values[0], clock)
    assert cache.hits == hits + 1
    verify(cache, values[1], clock)
    assert cache.hits == hits + 1  # evicted: verified again
    assert len(cache) == 3
