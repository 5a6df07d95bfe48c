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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

import aiohttp

from server.clock import utcnow
from server.errors import ApiError
from server.installations.credentials import InstallationService
from server.installations.model import OAuthState
from server.installations.ports import OAuthStateStore
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


_DENIED = {
    "access_denied": "You did not allow the app to access monday, so nothing was connected.",
    "invalid_scope": "monday refused the permissions the app asked for.",
    "unauthorized_client": "monday did not let this app ask for access.",
}


@dataclass(frozen=True, slots=True)
class OAuthFlow:
    """`POST /oauth/start` and `GET /oauth/callback` (contract §4, §10 PKCE)."""

    installation: InstallationService
    states: OAuthStateStore
    http: aiohttp.ClientSession
    settings: Settings

    async def start(self, session: Session, *, now: datetime | None = None) -> str:
        """A monday authorize URL carrying a fresh single-use state bound to the caller."""
        now = now or utcnow()
        settings = self.settings
        installation = await self.installation.installations.get(session.account_id)
        if installation is not None and installation.from_lifecycle and not installation.installed:
            raise ApiError(
                409,
                "APP_NOT_INSTALLED",
                "The app is not installed in this account: install it again, then connect.",
            )
        # Development fallback: an admin connecting to an unclaimed account becomes its
        # installer.
        await self.installation.installer_for_connect(session)
        state = secrets.token_urlsafe(32)
        verifier = new_code_verifier()
        await self.states.create(
            state_digest=state_digest(state),
            account_id=session.account_id,
            user_id=session.user_id,
            code_verifier=verifier,
            now=now,
            expires_at=now + STATE_TTL,
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

    async def complete(
        self,
        *,
        code: str | None,
        state: str | None,
        error: str | None,
        now: datetime | None = None,
    ) -> OAuthConnected:
        """Finish the flow started by `start`; `OAuthFlowError` says what went wrong."""
        now = now or utcnow()
        bound = await self.states.consume(state_digest(state), now=now) if state else None
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
        if bound.verifier_unreadable:
            # ENCRYPTION_KEYS changed during the 10 minutes of the flow.
            raise OAuthFlowError(
                400, "This link has expired", f"The sign-in must be started again. {START_AGAIN}"
            )
        user = await self._exchange_and_check(code, bound.code_verifier, bound)
        await self.installation.credentials.put(
            account_id=bound.account_id,
            user_id=bound.user_id,
            kind="oauth",
            secret=user.access_token,
            refresh_secret=user.refresh_token,
            expires_at=user.expires_at,
            scope=user.scope,
            now=now,
        )
        log.info("oauth connected", extra={"fields": {"user_id": bound.user_id}})
        return OAuthConnected(
            account_id=bound.account_id, user_id=bound.user_id, user_name=user.name
        )

    async def _exchange_and_check(
        self, code: str, verifier: str | None, bound: OAuthState
    ) -> _Exchanged:
        """The tokens for `code`, once monday confirmed they are the state's user's."""
        settings = self.settings
        try:
            tokens = await exchange_code(
                self.http,
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
            user = await self.installation.monday.me(tokens.access_token)
        except MondayAuthError:
            raise OAuthFlowError(
                400, "Not connected", f"monday rejected the new token. {START_AGAIN}"
            ) from None
        except MondayError:
            raise OAuthFlowError(
                502,
                "monday is unreachable",
                f"monday could not confirm who you are. {START_AGAIN}",
            ) from None
        if user.id != bound.user_id or user.account_id != bound.account_id:
            log.warning("oauth callback for another user or account refused")
            raise OAuthFlowError(
                403,
                "Wrong monday user",
                "You signed in to monday as a different user or account than the one who "
                "started connecting, so nothing was stored. Sign in as yourself and try "
                f"again. {START_AGAIN}",
            )
        return _Exchanged(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=tokens.expires_at,
            scope=tokens.scope or None,
            name=user.name,
        )


@dataclass(frozen=True, slots=True)
class _Exchanged:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    scope: str | None
    name: str
