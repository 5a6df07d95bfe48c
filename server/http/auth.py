"""Reading the caller's token from a request and verifying it (contract §3, §10).

Each route family calls exactly one of these: API routes `require_session`, view pages
`require_view_session`, `/monday/lifecycle` `require_lifecycle`, `/monday/actions/*`
`require_integration`. The verifiers refuse the other families' shapes (server/tokens.py).
"""

from __future__ import annotations

from aiohttp import web

from server import token_cache
from server.appkeys import SETTINGS
from server.logs import account_id_var
from server.tokens import (
    LIFECYCLE_PATH,
    IntegrationCall,
    LifecycleCaller,
    Session,
    extract_token,
    verify_integration,
    verify_lifecycle,
)


def session_from_token(request: web.Request, token: str) -> Session:
    settings = request.app[SETTINGS]
    session = token_cache.sessions.verify(  # a verified token, kept until its `exp`
        token,
        secrets=settings.client_secrets,
        client_id=settings.monday_client_id or None,
        app_id=settings.monday_app_id,
        leeway=settings.jwt_leeway_seconds,
        max_bytes=settings.max_token_bytes,
    )
    account_id_var.set(session.account_id)
    return session


def require_session(request: web.Request) -> Session:
    """The verified session of an API call; 401 in the envelope otherwise."""
    return session_from_token(request, extract_token(request.headers.get("Authorization")))


def require_view_session(request: web.Request) -> Session:
    """A view page load may carry the token as `?sessionToken=` (no other route reads it)."""
    header = request.headers.get("Authorization")
    if header:
        return session_from_token(request, extract_token(header))
    return session_from_token(request, extract_token(request.query.get("sessionToken")))


def require_lifecycle(request: web.Request) -> LifecycleCaller:
    """`aud` must be our public URL plus `/monday/lifecycle`; the token names one account."""
    settings = request.app[SETTINGS]
    caller = verify_lifecycle(
        extract_token(request.headers.get("Authorization"), "lifecycle"),
        secrets=settings.client_secrets,
        audience=settings.base_url + LIFECYCLE_PATH,
        leeway=settings.jwt_leeway_seconds,
        max_bytes=settings.max_token_bytes,
    )
    account_id_var.set(caller.account_id)
    return caller


def require_integration(request: web.Request) -> IntegrationCall:
    """`aud` must be our public URL plus this route's path."""
    settings = request.app[SETTINGS]
    call = verify_integration(
        extract_token(request.headers.get("Authorization"), "integration"),
        secrets=settings.signing_secrets,
        audience=settings.base_url + request.path,
        leeway=settings.jwt_leeway_seconds,
        max_bytes=settings.max_token_bytes,
    )
    account_id_var.set(call.account_id)
    return call
