"""Credentials: the installer's API key, who may see what, and keeping OAuth tokens fresh.

Development fallback (contract §4): when monday's lifecycle webhook never told us about an
account (no installation row, or a row no lifecycle event has touched and nobody claimed),
the first *admin* who connects a credential (an API key, or starting the OAuth flow) is
recorded as the installing user and the installation is marked installed. A member can
not claim an account; once a lifecycle `install` arrives, it decides.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from server.clock import utcnow
from server.errors import ApiError, forbidden
from server.installations.model import (
    Credential,
    CredentialSummary,
    Installation,
    SettingsChange,
    may_claim_installer,
)
from server.installations.ports import CredentialStore, InstallationStore
from server.monday.client import MondayClient
from server.monday.oauth import refresh
from server.monday.outcome import MondayAuthError, MondayError, MondayNoAnswer, MondayUnreachable
from server.sender import DEFAULT_POLICY, SenderPolicy
from server.settings import Settings
from server.tokens import Session

log = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)
MAX_API_KEY_CHARS = 4096


def api_key_rejected(message: str) -> ApiError:
    return ApiError(422, "API_KEY_REJECTED", message)


def monday_unavailable(what: str) -> ApiError:
    return ApiError(
        502,
        "MONDAY_UNAVAILABLE",
        f"monday could not be reached to {what}; try again in a moment.",
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def summary_json(summary: CredentialSummary) -> dict[str, Any]:
    """The public face of a credential: never the secret."""
    return {
        "kind": summary.kind,
        "owner_user_id": summary.user_id,
        "connected": True,
        "verified_at": _iso(summary.verified_at),
        "last4": summary.last4,
        "needs_reconnect": summary.needs_reconnect,
        "expires_at": _iso(summary.expires_at),
    }


def schedule_json(installation: Installation | None) -> dict[str, Any]:
    """`quiet_hours` ({"start", "end"} or null) and `digest_window_seconds` (contract §12)."""
    if installation is None:
        return {"quiet_hours": None, "digest_window_seconds": 0}
    start, end = installation.quiet_hours_start, installation.quiet_hours_end
    return {
        "quiet_hours": {"start": start, "end": end} if start and end else None,
        "digest_window_seconds": installation.digest_window_seconds,
    }


def _visible(
    summary: CredentialSummary, session: Session, installation: Installation | None
) -> bool:
    """Admins see every credential of the account; others their own OAuth token and the
    installer's API key (so they know whether sending as the installer can work)."""
    if session.is_admin:
        return True
    if summary.kind == "oauth":
        return summary.user_id == session.user_id
    installer = installation.installer_user_id if installation else None
    return summary.kind == "api_key" and summary.user_id == installer


def require_policy_admin(session: Session) -> None:
    """403 unless the caller may change the sender policy (an admin, neither view-only nor a
    guest: a token claiming both admin and a restriction gets the restriction)."""
    if not session.is_admin or session.is_view_only or session.is_guest:
        raise forbidden(
            "Only an account admin can change the account's notification settings "
            "(who notifications are sent as, quiet hours, the digest window)."
        )


@dataclass(frozen=True, slots=True)
class InstallationService:
    """`GET/PATCH /installation` and the installer's API key (contract §4)."""

    installations: InstallationStore
    credentials: CredentialStore
    monday: MondayClient

    async def view(self, session: Session) -> dict[str, Any]:
        """`GET /installation` for the caller's account (contract §4)."""
        installation = await self.installations.get(session.account_id)
        summaries = await self.credentials.list(session.account_id)
        return {
            "account_id": session.account_id,
            "installed": bool(installation and installation.installed),
            "installer_user_id": installation.installer_user_id if installation else None,
            "sender_policy": installation.sender_policy if installation else DEFAULT_POLICY,
            "credentials": [
                summary_json(s) for s in summaries if _visible(s, session, installation)
            ],
            **schedule_json(installation),
        }

    async def set_sender_policy(self, session: Session, policy: SenderPolicy) -> dict[str, Any]:
        """Admins only; answers the installation as `view` shows it afterwards."""
        return await self.change_settings(session, SettingsChange(sender_policy=policy))

    async def change_settings(self, session: Session, change: SettingsChange) -> dict[str, Any]:
        """`PATCH /installation`: any subset of the sender policy, quiet hours and digest
        window (contract §12), admins only, in one write that bumps the account's revision;
        answers the installation as `view` shows it afterwards."""
        require_policy_admin(session)
        await self.installations.change_settings(session.account_id, change)
        return await self.view(session)

    async def installer_for_connect(self, session: Session) -> Installation | None:
        """The installation as the caller connects a credential, applying the dev fallback.

        An admin connecting to an account nobody claimed becomes its installer.
        """
        installation = await self.installations.get(session.account_id)
        if may_claim_installer(installation) and session.is_admin and not session.is_view_only:
            installation = await self.installations.claim_installer(
                session.account_id, session.user_id
            )
        return installation

    async def connect_api_key(self, session: Session, api_key: str) -> CredentialSummary:
        """Check the key with monday (`me`) and store it encrypted for the installing user."""
        installation = await self.installations.get(session.account_id)
        claiming = may_claim_installer(installation)
        if claiming:
            if not session.is_admin or session.is_view_only:
                raise forbidden(
                    "The app has no installing user yet: an account admin must connect first."
                )
        else:
            assert installation is not None
            if installation.installer_user_id != session.user_id:
                raise forbidden("Only the user who installed the app can set its API key.")
            if not installation.installed:
                raise ApiError(
                    409,
                    "APP_NOT_INSTALLED",
                    "The app is not installed in this account: install it again, then connect.",
                )

        try:
            user = await self.monday.me(api_key)
        except MondayAuthError:
            raise api_key_rejected(
                "monday rejected this API key: copy your personal API token again from monday "
                "(avatar → Developers → My access tokens) and paste it here."
            ) from None
        except MondayError:
            raise monday_unavailable("check the API key") from None
        if user.id != session.user_id or user.account_id != session.account_id:
            raise api_key_rejected(
                "This API key belongs to another monday user or account: "
                "paste the personal API token of the installing user, in this account."
            )

        if claiming:
            installation = await self.installations.claim_installer(
                session.account_id, session.user_id
            )
            if installation.installer_user_id != session.user_id:
                raise forbidden("Another admin has just been recorded as the installing user.")
        credential = await self.credentials.put(
            account_id=session.account_id,
            user_id=session.user_id,
            kind="api_key",
            secret=api_key,
        )
        log.info("api key connected", extra={"fields": {"user_id": session.user_id}})
        return credential.summary()

    async def disconnect_api_key(self, session: Session) -> None:
        """Remove the installer's API key: the installing user or an admin may."""
        installation = await self.installations.get(session.account_id)
        installer = installation.installer_user_id if installation else None
        if session.user_id != installer and not (session.is_admin and not session.is_view_only):
            raise forbidden("Only the installing user or an admin can remove the API key.")
        if installer is None:
            return
        await self.credentials.delete(session.account_id, installer, "api_key")


# ---- OAuth token freshness ----


def _needs_refresh(credential: Credential, now: datetime) -> bool:
    return (
        credential.kind == "oauth"
        and credential.refresh_secret is not None
        and credential.expires_at is not None
        and credential.expires_at - now < REFRESH_MARGIN
    )


@dataclass
class OAuthRefresher:
    """Keeps app OAuth tokens fresh (monday's OAuth 2.1: short-lived, rotating refresh)."""

    credentials: CredentialStore
    http: aiohttp.ClientSession
    settings: Settings
    # One refresh at a time per (account, user) in this process.
    _locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    async def fresh(self, credential: Credential, *, now: datetime | None = None) -> Credential:
        """The credential, refreshed first if it expires within 5 minutes.

        The new access and refresh tokens are stored encrypted (monday rotates refresh
        tokens). If monday refuses the refresh token the credential is marked
        `needs_reconnect` and returned with that flag set. A transport failure returns the
        current credential while it is still valid and raises the `MondayError` once it
        has expired. Legacy tokens (no expiry, no refresh token) are returned unchanged.
        """
        now = now or utcnow()
        if not _needs_refresh(credential, now):
            return credential
        lock = self._locks.setdefault((credential.account_id, credential.user_id), asyncio.Lock())
        async with lock:
            return await self._refresh(credential, now)

    async def _refresh(self, credential: Credential, now: datetime) -> Credential:
        store = self.credentials
        # Another task may have refreshed while we waited.
        current = await store.get(credential.account_id, credential.user_id, "oauth")
        if current is None:
            return credential
        if not _needs_refresh(current, now) or current.needs_reconnect:
            return current
        assert current.refresh_secret is not None
        settings = self.settings
        try:
            tokens = await refresh(
                self.http,
                token_url=settings.monday_oauth_token_url,
                client_id=settings.monday_client_id,
                client_secret=settings.client_secrets[0],
                refresh_token=current.refresh_secret,
                timeout_seconds=settings.monday_timeout_seconds,
            )
        except (MondayUnreachable, MondayNoAnswer):
            assert current.expires_at is not None
            if current.expires_at > now:
                return current
            raise
        except MondayError:
            latest = await store.get(credential.account_id, credential.user_id, "oauth")
            if latest is not None and latest.refresh_secret != current.refresh_secret:
                return latest  # another process refreshed with the same token first
            await store.mark_needs_reconnect(current.account_id, current.user_id, "oauth")
            log.warning(
                "oauth refresh refused; credential needs reconnecting",
                extra={"fields": {"user_id": current.user_id}},
            )
            return replace(current, needs_reconnect=True, updated_at=now)
        replaced = await store.replace_oauth_tokens(
            current,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=tokens.expires_at,
            scope=tokens.scope or None,
        )
        if replaced is None:
            latest = await store.get(credential.account_id, credential.user_id, "oauth")
            return latest or credential
        return replaced
