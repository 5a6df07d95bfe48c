"""monday's OAuth token endpoint (monday-platform.md §3): code exchange and refresh.

Legacy tokens never expire and come without a refresh token; the OAuth 2.1 flow adds
`refresh_token` and an expiry (`expires_in`, or the access token's own JWT `exp`). Both are read.
Failures raise `MondayError` whose message never contains the code, secret or tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import jwt

from server.clock import utcnow
from server.monday.outcome import MondayError, MondayNoAnswer, MondayUnreachable, scrub

DEFAULT_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class OAuthTokens:
    """What the token endpoint granted. `expires_at` is None for legacy non-expiring tokens."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    scope: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret

    def __repr__(self) -> str:  # keep tokens out of logs and tracebacks
        has_refresh = self.refresh_token is not None
        return (
            f"OAuthTokens(scope={self.scope!r}, expires_at={self.expires_at!r}, "
            f"refresh_token={'<set>' if has_refresh else None})"
        )


def _jwt_expiry(token: str) -> datetime | None:
    if token.count(".") != 2:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return datetime.fromtimestamp(exp, UTC)
    return None


def _tokens_from(body: Mapping[str, Any], now: datetime) -> OAuthTokens | None:
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        return None
    refresh = body.get("refresh_token")
    expires_in = body.get("expires_in")
    expires_at: datetime | None = None
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        expires_at = now + timedelta(seconds=float(expires_in))
    elif isinstance(expires_in, str) and expires_in.isdigit():
        expires_at = now + timedelta(seconds=int(expires_in))
    else:
        expires_at = _jwt_expiry(access)
    scope = body.get("scope")
    token_type = body.get("token_type")
    return OAuthTokens(
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=expires_at,
        scope=scope if isinstance(scope, str) else "",
        token_type=token_type if isinstance(token_type, str) else "Bearer",
    )


async def _post(
    http: aiohttp.ClientSession,
    token_url: str,
    payload: dict[str, str],
    *,
    what: str,
    timeout_seconds: float,
) -> OAuthTokens:
    public = ("grant_type", "redirect_uri", "client_id")
    secrets = [value for key, value in payload.items() if key not in public]
    now = utcnow()
    try:
        async with http.post(
            token_url,
            json=payload,
            headers={"Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        ) as response:
            status = response.status
            text = await response.text()
    except aiohttp.ClientConnectorError as exc:
        raise MondayUnreachable(
            f"Could not connect to monday's token endpoint to {what}.", code="MONDAY_UNREACHABLE"
        ) from exc
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise MondayNoAnswer(
            f"monday's token endpoint did not answer while trying to {what}.", code="NO_ANSWER"
        ) from exc
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    if status == 200 and isinstance(body, Mapping):
        tokens = _tokens_from(body, now)
        if tokens is not None:
            return tokens
    error = "invalid_response"
    description = ""
    if isinstance(body, Mapping):
        error = str(body.get("error") or body.get("error_code") or error)
        description = str(body.get("error_description") or body.get("error_message") or "")
    message = f"monday refused to {what}: {error} (HTTP {status})"
    if description:
        message += f": {description}"
    raise MondayError(
        scrub(message, secrets) or "",
        code="OAUTH_" + "".join(c if c.isalnum() else "_" for c in error).upper(),
        http_status=status,
    )


async def exchange_code(
    http: aiohttp.ClientSession,
    *,
    token_url: str,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> OAuthTokens:
    """Trade an authorization `code` for tokens (`grant_type=authorization_code`).

    `code_verifier` is the PKCE verifier whose S256 challenge was in the authorize URL; like
    the secret and the code it is scrubbed from every error message.
    """
    payload = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "client_secret": client_secret,
        "code": code,
        "redirect_uri": redirect_uri,
    }
    if code_verifier is not None:
        payload["code_verifier"] = code_verifier
    return await _post(
        http,
        token_url,
        payload,
        what="exchange the authorization code",
        timeout_seconds=timeout_seconds,
    )


async def refresh(
    http: aiohttp.ClientSession,
    *,
    token_url: str,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> OAuthTokens:
    """Trade a refresh token for new tokens; monday rotates it, so store the new one."""
    return await _post(
        http,
        token_url,
        {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
        },
        what="refresh the access token",
        timeout_seconds=timeout_seconds,
    )
