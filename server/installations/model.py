"""The installations side's typed values: what the stores return and the services use.

Stores never hand out rows or dicts: an `Installation` is one account's installation, a
`Credential` one decrypted secret (only the credential store decrypts), a
`CredentialSummary` what may be shown of one, an `OAuthState` one pending sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

CredentialKind = Literal["api_key", "oauth"]


def last4(secret: str) -> str:
    """The last four characters, the only part of a secret ever shown."""
    return secret[-4:]


def credential_kind(value: str) -> CredentialKind:
    """`api_key` stays `api_key`; anything else is the app's OAuth token."""
    return "api_key" if value == "api_key" else "oauth"


@dataclass(frozen=True, slots=True)
class Installation:
    """The app's installation in one monday account."""

    account_id: str
    installed: bool
    installer_user_id: str | None
    sender_policy: str
    app_id: str | None = None
    installer_name: str | None = None
    installer_email: str | None = None
    account_name: str | None = None
    account_slug: str | None = None
    account_tier: str | None = None
    account_max_users: int | None = None
    version: dict[str, Any] | None = None
    subscription: dict[str, Any] | None = None
    last_event_type: str | None = None
    last_event_at: datetime | None = None
    installed_at: datetime | None = None
    uninstalled_at: datetime | None = None
    updated_at: datetime | None = None
    # Bumped by every change to the account's installation or credentials (caches compare it).
    revision: int = 0
    # Contract §12: quiet hours ("HH:MM" each, both None = off) and the digest window.
    quiet_hours_start: str | None = None
    quiet_hours_end: str | None = None
    digest_window_seconds: int = 0

    @property
    def from_lifecycle(self) -> bool:
        """Whether monday's lifecycle webhook has ever told us about this account."""
        return self.last_event_type is not None


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """What `PATCH /installation` changes (contract §12): absent keys keep their value.

    `quiet_hours` is set only when `set_quiet_hours` is true (None then turns them off).
    """

    sender_policy: str | None = None
    set_quiet_hours: bool = False
    quiet_hours: tuple[str, str] | None = None
    digest_window_seconds: int | None = None

    def columns(self) -> dict[str, Any]:
        """The `installations` columns this change writes."""
        values: dict[str, Any] = {}
        if self.sender_policy is not None:
            values["sender_policy"] = self.sender_policy
        if self.set_quiet_hours:
            start, end = self.quiet_hours if self.quiet_hours else (None, None)
            values.update(quiet_hours_start=start, quiet_hours_end=end)
        if self.digest_window_seconds is not None:
            values["digest_window_seconds"] = self.digest_window_seconds
        return values


def may_claim_installer(installation: Installation | None) -> bool:
    """The development fallback: no lifecycle event ever arrived and nobody claimed it yet."""
    return installation is None or (
        not installation.from_lifecycle and installation.installer_user_id is None
    )


@dataclass(frozen=True, slots=True)
class Credential:
    """A decrypted credential: `secret` is the API token to send as `Authorization`."""

    account_id: str
    user_id: str
    kind: CredentialKind
    secret: str = field(repr=False)
    refresh_secret: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    scope: str | None = None
    last4: str = ""
    verified_at: datetime | None = None
    needs_reconnect: bool = False
    updated_at: datetime | None = None

    @property
    def owner_user_id(self) -> str:
        return self.user_id

    def summary(self) -> CredentialSummary:
        return CredentialSummary(
            account_id=self.account_id,
            user_id=self.user_id,
            kind=self.kind,
            last4=self.last4,
            verified_at=self.verified_at,
            needs_reconnect=self.needs_reconnect,
            expires_at=self.expires_at,
        )


@dataclass(frozen=True, slots=True)
class CredentialSummary:
    """What may be shown about a credential: never the secret, only its last 4 characters."""

    account_id: str
    user_id: str
    kind: str
    last4: str
    verified_at: datetime | None
    needs_reconnect: bool
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class OAuthState:
    """A spent sign-in state: who started it, and its PKCE verifier (None before PKCE)."""

    account_id: str
    user_id: str
    expires_at: datetime
    used_at: datetime | None
    code_verifier: str | None = field(default=None, repr=False)
    # The verifier was stored but no configured key decrypts it (ENCRYPTION_KEYS changed).
    verifier_unreadable: bool = False
