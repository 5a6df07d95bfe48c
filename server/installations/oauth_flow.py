"""The app's OAuth flow, per user (contract §4, monday-platform.md §3).

No cookies (third-party cookies do not work inside monday's iframe): the `state` is the
binding. It is random, stored only as a SHA-256 digest together with the account and user
who started the flow, valid 10 minutes and consumed on first use. Every flow carries PKCE
(RFC 7636, S256 only, as monday's newer OAuth flow requires): the verifier is random, kept
with the state encrypted with ENCRYPTION_KEYS (it must go back to monday in clear, so it
cannot be a digest), sent only with the code exchange, and never logged or returned. The
callback exchanges the code, asks monday (`me`) whose token it got, and stores it only if
that is the same user in the same account.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from server.errors import ApiError
from server.installations.credentials import installer_for_connect
from server.installations.crypto import CipherError, CredentialCipher
from server.installations.store import (
    consume_oauth_state,
    create_oauth_state,
    get_installation,
    store_credential,
    utcnow,
)
from server.monday.client import MondayClient
from server.monday.oauth import exchange_code
from server.monday.outcome import MondayAuthError, MondayError, MondayNoAnswer, MondayUnreachable
from server.settings import Settings
from server.tokens import Session

log = logging.getLogger(__name__)

OAUTH_SCOPES = "me:read users:read boards:read notifications:write"
STATE_TTL = timedelta(minutes=10)
CALLBACK_PATH = "/oauth/callback"

START_AGAIN = "Go back to the app in monday and click Connect again."


class OAuthFlowError(Exception):
    """The callback cannot complete; `message` is shown to the user (never a secret)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


@dataclass(frozen=True, slots=True)
class OAuthConnected:
    account_id: str
    user_id: str
    user_name: str


def state_digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def redirect_uri(settings: Settings) -> str:
    return settings.base_url + CALLBACK_PATH


def new_code_verifier() -> str:
    """86 characters of [A-Za-z0-9_-]: within RFC 7636's 43 to 128 unreserved characters."""
    return secrets.token_urlsafe(64)


def code_challenge(verifier: str) -> str:
    """S256: base64url(SHA-256(verifier)) without padding (43 characters)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def start_oauth(
    engine: AsyncEngine,
    cipher: CredentialCipher,
    settings: Settings,
    session: Session,
    *,
    now: datetime | None = None,
) -> str:
    """A monday authorize URL carrying a fresh single-use state bound to the caller."""
    now = now or utcnow()
    installation = await get_installation(engine, session.account_id)
    if installation is not None and installation.from_lifecycle and not installation.installed:
        raise ApiError(
            409,
            "APP_NOT_INSTALLED",
            "The app is not installed in this account: install it again, then connect.",
        )
    # Development fallback: an admin connecting to an unclaimed account becomes its installer.
    await installer_for_connect(engine, session)
    state = secrets.token_urlsafe(32)
    verifier = new_code_verifier()
    await create_oauth_state(
        engine,
        state_digest=state_digest(state),
        account_id=session.account_id,
        user_id=session.user_id,
        now=now,
        expires_at=now + STATE_TTL,
        code_verifier_encrypted=cipher.encrypt(verifier),
    )
    query = urlencode(
        {
            "client_id": settings.monday_client_id,
            "redirect_uri": redirect_uri(settings),
            "scope": OAUTH_SCOPES,
            "state": state,
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    base = settings.monday_oauth_authorize_url
    return f"{base}{'&' if '?' in base else '?'}{query}"


_DENIED = {
    "access_denied": "You did not allow the app to access monday, so nothing was connected.",
    "invalid_scope": "monday refused the permissions the app asked for.",
    "unauthorized_client": "monday did not let this app ask for access.",
}


async def complete_oauth(
    engine: AsyncEngine,
    cipher: CredentialCipher,
    http: aiohttp.ClientSession,
    monday: MondayClient,
    settings: Settings,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
    now: datetime | None = None,
) -> OAuthConnected:
    """Finish the flow started by `start_oauth`; `OAuthFlowError` says what went wrong."""
    now = now or utcnow()
    bound = await consume_oauth_state(engine, state_digest(state), now=now) if state else None
    if error:
        reason = _DENIED.get(error, "monday reported an error while connecting.")
        title = "Access was denied" if error == "access_denied" else "Not connected"
        raise OAuthFlowError(400, title, f"{reason} {START_AGAIN}")
    if bound is None:
        raise OAuthFlowError(
            400,
            "This link has expired",
            f"This sign-in link is unknown, expired or was already used. {START_AGAIN}",
        )
    if not code:
        raise OAuthFlowError(
            400, "Not connected", f"monday sent no authorization code. {START_AGAIN}"
        )
    verifier: str | None = None
    if bound.code_verifier_encrypted is not None:
        try:
            verifier = cipher.decrypt(bound.code_verifier_encrypted)
        except CipherError:
            # ENCRYPTION_KEYS changed during the 10 minutes of the flow.
            raise OAuthFlowError(
                400, "This link has expired", f"The sign-in must be started again. {START_AGAIN}"
            ) from None

    try:
        tokens = await exchange_code(
            http,
            token_url=settings.monday_oauth_token_url,
            client_id=settings.monday_client_id,
            client_secret=settings.client_secrets[0],
            code=code,
            redirect_uri=redirect_uri(settings),
            code_verifier=verifier,
            timeout_seconds=settings.monday_timeout_seconds,
        )
    except (MondayUnreachable, MondayNoAnswer):
        raise OAuthFlowError(
            502, "monday is unreachable", f"monday did not answer. {START_AGAIN}"
        ) from None
    except MondayError as exc:
        log.warning("oauth code exchange refused: %s", exc.code)
        raise OAuthFlowError(
            400, "Not connected", f"monday did not accept the sign-in. {START_AGAIN}"
        ) from None

    try:
        user = await monday.me(tokens.access_token)
    except MondayAuthError:
        raise OAuthFlowError(
            400, "Not connected", f"monday rejected the new token. {START_AGAIN}"
        ) from None
    except MondayError:
        raise OAuthFlowError(
            502, "monday is unreachable", f"monday could not confirm who you are. {START_AGAIN}"
        ) from None
    if user.id != bound.user_id or user.account_id != bound.account_id:
        log.warning("oauth callback for another user or account refused")
        raise OAuthFlowError(
            403,
            "Wrong monday user",
            "You signed in to monday as a different user or account than the one who started "
            f"connecting, so nothing was stored. Sign in as yourself and try again. {START_AGAIN}",
        )

    await store_credential(
        engine,
        cipher,
        account_id=bound.account_id,
        user_id=bound.user_id,
        kind="oauth",
        secret=tokens.access_token,
        refresh_secret=tokens.refresh_token,
        expires_at=tokens.expires_at,
        scope=tokens.scope or None,
        now=now,
    )
    log.info("oauth connected", extra={"fields": {"user_id": bound.user_id}})
    return OAuthConnected(account_id=bound.account_id, user_id=bound.user_id, user_name=user.name)
