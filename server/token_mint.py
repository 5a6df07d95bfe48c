"""Minting the three token families (development, tests and `monday-notify mint-token`).

Each token has the shape the matching verifier in `tokens.py` expects (contract §10), so
tests and the developer harness exercise the real verification path.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from server.tokens import ALGORITHM


def mint_session(
    secret: str,
    *,
    account_id: int | str,
    user_id: int | str,
    client_id: str,
    app_id: int | str | None = None,
    is_admin: bool = False,
    is_view_only: bool = False,
    is_guest: bool = False,
    lifetime: int = 300,
    now: float | None = None,
    extra_dat: dict[str, Any] | None = None,
) -> str:
    """A session token shaped like monday's (numeric `exp`, claims under `dat`)."""
    issued = int(now if now is not None else time.time())
    dat: dict[str, Any] = {
        "client_id": client_id,
        "user_id": int(user_id),
        "account_id": int(account_id),
        "slug": f"dev-{account_id}",
        "app_id": int(app_id) if app_id is not None else None,
        "app_version_id": 1,
        "install_id": -2,
        "is_admin": is_admin,
        "is_view_only": is_view_only,
        "is_guest": is_guest,
        "user_kind": "guest"
        if is_guest
        else "view_only"
        if is_view_only
        else "admin"
        if is_admin
        else "member",
    }
    if dat["app_id"] is None:
        del dat["app_id"]
    dat.update(extra_dat or {})
    return jwt.encode({"dat": dat, "exp": issued + lifetime}, secret, algorithm=ALGORITHM)


def mint_lifecycle(
    secret: str,
    *,
    account_id: int | str,
    user_id: int | str,
    audience: str,
    lifetime: int = 300,
    now: float | None = None,
) -> str:
    """A lifecycle webhook JWT in monday's outbound shape (monday-platform.md, 2026-11-28):
    top-level `accountId`, `userId`, `aud` = our `/monday/lifecycle` URL, `iat`, `exp`."""
    issued = int(now if now is not None else time.time())
    claims = {
        "accountId": int(account_id),
        "userId": int(user_id),
        "aud": audience,
        "iat": issued,
        "exp": issued + lifetime,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def mint_integration(
    secret: str,
    *,
    account_id: int | str,
    user_id: int | str,
    audience: str,
    short_lived_token: str | None,
    lifetime: int = 300,
) -> str:
    """An integration request JWT as monday's docs show it (exp - iat = 300 s)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "accountId": int(account_id),
        "userId": int(user_id),
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
    }
    if short_lived_token:
        claims["shortLivedToken"] = short_lived_token
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
