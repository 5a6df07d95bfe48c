"""The three monday token families (contract §3) and their verification.

Only HS256 is accepted. Each family's secrets are tried newest first and the index of
the one that matched is reported, so an old secret can be retired once nothing uses it.

The families are told apart by their shape, not only by their secret (contract §10):
monday signs session tokens *and* lifecycle webhooks with the client secret, so a valid
signature alone does not say which one a token is. Session tokens carry `dat`; outbound
tokens (lifecycle, integration) carry top-level `accountId`, `userId`, `aud`, `exp`. Each
verifier refuses the other shape, an outbound token must name our endpoint in `aud` and
must expire.
Verification is pure (an injectable clock); minting (dev, tests) is in `token_mint.py`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from server.errors import ApiError
from server.ids import monday_id_or_none

Clock = Callable[[], float]
ALGORITHM = "HS256"
# The route lifecycle tokens are for: their `aud` is PUBLIC_BASE_URL + this path.
LIFECYCLE_PATH = "/monday/lifecycle"

# Which secret index matched, per family; read by /metrics.
secret_matches: Counter[tuple[str, int]] = Counter()
auth_failures: Counter[tuple[str, str]] = Counter()


class TokenError(ApiError):
    """A refused token: always 401 with one of contract §3's codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(401, code, message)


@dataclass(frozen=True, slots=True)
class Session:
    """A verified seamless-auth session: who is calling from a view or widget."""

    account_id: str
    user_id: str
    is_admin: bool
    is_view_only: bool
    is_guest: bool
    client_id: str | None
    app_id: str | None
    expires_at: int
    secret_index: int

    @property
    def role(self) -> str:
        if self.is_view_only:
            return "view_only"
        if self.is_guest:
            return "guest"
        return "admin" if self.is_admin else "member"


@dataclass(frozen=True, slots=True)
class LifecycleCaller:
    """A verified lifecycle webhook token: the account (and admin) monday signed it for.

    The event itself is in the unsigned body; only `account_id` here is trusted, and the
    event may only touch that account.
    """

    account_id: str
    user_id: str
    audience: str
    expires_at: int
    secret_index: int


@dataclass(frozen=True, slots=True)
class IntegrationCall:
    """A verified integration (automation) request with its short-lived API token."""

    account_id: str
    user_id: str
    short_lived_token: str | None
    audience: str
    expires_at: int
    secret_index: int

    def __repr__(self) -> str:  # never print the short-lived token
        return (
            f"IntegrationCall(account_id={self.account_id!r}, user_id={self.user_id!r}, "
            f"audience={self.audience!r})"
        )


def extract_token(authorization: str | None, family: str = "session") -> str:
    """The JWT from `Authorization: <jwt>` or `Authorization: Bearer <jwt>`; a refusal
    names the token `family` the route takes (session, lifecycle or integration)."""
    value = (authorization or "").strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    if not value or value.lower() == "bearer":
        raise TokenError(
            "TOKEN_MISSING", f"No token: send the {family} token in the Authorization header."
        )
    return value


def _decode(
    token: str,
    secrets: Sequence[str],
    *,
    family: str,
    require_exp: bool,
    leeway: int,
    max_bytes: int,
    clock: Clock,
    shape: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], int]:
    """Check header, signature (each secret, newest first), time claims and the family's
    `shape`; return the claims. A secret is counted as matched only for an accepted token."""
    if len(token) > max_bytes:
        raise _fail(family, "TOKEN_MALFORMED", "The token is too large.")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise _fail(family, "TOKEN_MALFORMED", "The token is not a well-formed JWT.") from None
    if header.get("alg") != ALGORITHM:
        raise _fail(family, "TOKEN_MALFORMED", "The token must be signed with HS256.")
    if not secrets:
        raise _fail(family, "TOKEN_INVALID_SIGNATURE", "No secret is configured for this token.")

    for index, secret in enumerate(secrets):
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                # Time claims are checked below against our clock, so tests can move time.
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                },
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidTokenError:
            raise _fail(family, "TOKEN_MALFORMED", "The token is not a well-formed JWT.") from None
        _check_times(claims, family=family, require_exp=require_exp, leeway=leeway, now=clock())
        if shape is not None:
            shape(claims)
        # Not counted yet: the verifier counts the match once its own checks pass too.
        return claims, index
    raise _fail(family, "TOKEN_INVALID_SIGNATURE", "The token's signature does not match.")


def _number(claims: dict[str, Any], name: str, family: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(family, "TOKEN_MALFORMED", f"The token's '{name}' claim must be a number.")
    return float(value)


def _check_times(
    claims: dict[str, Any], *, family: str, require_exp: bool, leeway: int, now: float
) -> None:
    exp = _number(claims, "exp", family)
    if exp is None and require_exp:
        raise _fail(family, "TOKEN_MALFORMED", "The token has no expiry ('exp').")
    if exp is not None and now > exp + leeway:
        raise expired_error(family)
    nbf = _number(claims, "nbf", family)
    if nbf is not None and now + leeway < nbf:
        raise _fail(family, "TOKEN_NOT_YET_VALID", "The token is not valid yet.")
    iat = _number(claims, "iat", family)
    if iat is not None and now + leeway < iat:
        raise _fail(family, "TOKEN_NOT_YET_VALID", "The token was issued in the future.")


def expired_error(family: str) -> TokenError:
    """TOKEN_EXPIRED, counted (also raised by server/token_cache.py for a cached token)."""
    return _fail(family, "TOKEN_EXPIRED", "The token has expired: fetch a new one.")


def note_secret_match(family: str, index: int) -> None:
    """Count an accepted token under the secret that signed it (also for a cached token, so
    the metric still tells when an old secret is unused)."""
    secret_matches[(family, index)] += 1


def _fail(family: str, code: str, message: str) -> TokenError:
    auth_failures[(family, code)] += 1
    return TokenError(code, message)


# Top-level claims of monday's outbound tokens: a session token never has them.
OUTBOUND_CLAIMS = ("accountId", "userId", "aud", "shortLivedToken")


def _outbound_shape(family: str, audience: str) -> Callable[[dict[str, Any]], None]:
    """Refuse a token not shaped like monday's outbound JWTs for this endpoint.

    (`exp` is required by `_decode` itself.)
    """

    def check(claims: dict[str, Any]) -> None:
        if "dat" in claims:
            raise _fail(family, "TOKEN_MALFORMED", "A session token cannot call this endpoint.")
        if claims.get("aud") != audience:  # an absent `aud` too: it must name this endpoint
            raise _fail(family, "TOKEN_WRONG_APP", "The token was issued for another endpoint.")
        if monday_id_or_none(claims.get("accountId")) is None or (
            monday_id_or_none(claims.get("userId")) is None
        ):
            raise _fail(family, "TOKEN_MALFORMED", "The token has no valid accountId or userId.")

    return check


def _ids_and_expiry(claims: dict[str, Any]) -> tuple[str, str, int]:
    """An outbound token's account, user and expiry, once its shape was checked."""
    account_id = monday_id_or_none(claims["accountId"])
    user_id = monday_id_or_none(claims["userId"])
    assert account_id is not None and user_id is not None
    return account_id, user_id, int(claims["exp"])


def _session_shape(claims: dict[str, Any]) -> None:
    if any(name in claims for name in OUTBOUND_CLAIMS):
        # A lifecycle webhook token is signed with the same client secret: not a session.
        raise _fail("session", "TOKEN_MALFORMED", "This token is not a session token.")
    if not isinstance(claims.get("dat"), dict):
        raise _fail("session", "TOKEN_MALFORMED", "The token has no 'dat' claim.")


def verify_session(
    token: str,
    *,
    secrets: Sequence[str],
    client_id: str | None,
    app_id: int | str | None,
    leeway: int = 10,
    max_bytes: int = 8192,
    clock: Clock = time.time,
) -> Session:
    """A session token from `monday.get("sessionToken")`, signed with the client secret."""
    claims, index = _decode(
        token,
        secrets,
        family="session",
        require_exp=True,
        leeway=leeway,
        max_bytes=max_bytes,
        clock=clock,
        shape=_session_shape,
    )
    dat = claims["dat"]
    if client_id and dat.get("client_id") != client_id:
        raise _fail("session", "TOKEN_WRONG_APP", "The token was issued for another app.")
    if app_id is not None and str(dat.get("app_id")) != str(app_id):
        raise _fail("session", "TOKEN_WRONG_APP", "The token was issued for another app.")
    account_id = monday_id_or_none(dat.get("account_id"))
    user_id = monday_id_or_none(dat.get("user_id"))
    if account_id is None or user_id is None:
        raise _fail("session", "TOKEN_MALFORMED", "The token has no valid account or user id.")
    raw_app = dat.get("app_id")
    note_secret_match("session", index)
    return Session(
        account_id=account_id,
        user_id=user_id,
        is_admin=dat.get("is_admin") is True,
        is_view_only=_restricted(dat, "is_view_only", ("view_only", "viewer")),
        is_guest=_restricted(dat, "is_guest", ("guest",)),
        client_id=dat.get("client_id") if isinstance(dat.get("client_id"), str) else None,
        app_id=None if raw_app is None else str(raw_app),
        expires_at=int(claims["exp"]),
        secret_index=index,
    )


def _restricted(dat: dict[str, Any], flag: str, kinds: tuple[str, ...]) -> bool:
    """A restriction fails closed: set unless its flag is absent, null or JSON false, or when
    `user_kind` names it (monday documents booleans; a `1` or `"true"`, or a kind without the
    flag, must not hand a view-only user or a guest a member's rights). A privilege
    (`is_admin`) is the reverse: only JSON true grants it."""
    value = dat.get(flag)
    kind = dat.get("user_kind")
    # Spelled as monday might (`Guest`, `view-only`, `viewOnly`): compared loosely.
    spelled = kind.lower().replace("-", "_") if isinstance(kind, str) else None
    loose = {k.replace("_", "") for k in kinds}
    named = spelled is not None and (spelled in kinds or spelled.replace("_", "") in loose)
    return (value is not None and value is not False) or named


def verify_lifecycle(
    token: str,
    *,
    secrets: Sequence[str],
    audience: str,
    leeway: int = 10,
    max_bytes: int = 8192,
    clock: Clock = time.time,
) -> LifecycleCaller:
    """A lifecycle webhook's JWT: client secret, outbound shape, `aud` = our lifecycle URL."""
    claims, index = _decode(
        token,
        secrets,
        family="lifecycle",
        require_exp=True,
        leeway=leeway,
        max_bytes=max_bytes,
        clock=clock,
        shape=_outbound_shape("lifecycle", audience),
    )
    account_id, user_id, expires_at = _ids_and_expiry(claims)
    note_secret_match("lifecycle", index)
    return LifecycleCaller(
        account_id=account_id,
        user_id=user_id,
        audience=audience,
        expires_at=expires_at,
        secret_index=index,
    )


def verify_integration(
    token: str,
    *,
    secrets: Sequence[str],
    audience: str,
    leeway: int = 10,
    max_bytes: int = 8192,
    clock: Clock = time.time,
) -> IntegrationCall:
    """An integration request's JWT, signed with the signing secret, `aud` = our route URL."""
    claims, index = _decode(
        token,
        secrets,
        family="integration",
        require_exp=True,
        leeway=leeway,
        max_bytes=max_bytes,
        clock=clock,
        shape=_outbound_shape("integration", audience),
    )
    account_id, user_id, expires_at = _ids_and_expiry(claims)
    short_lived = claims.get("shortLivedToken")
    note_secret_match("integration", index)
    return IntegrationCall(
        account_id=account_id,
        user_id=user_id,
        short_lived_token=short_lived if isinstance(short_lived, str) and short_lived else None,
        audience=audience,
        expires_at=expires_at,
        secret_index=index,
    )
