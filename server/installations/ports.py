"""What the installation services need from storage, as small protocols.

One SQL adapter plays each (`server/storage/installations/`); tests use the same adapters
on SQLite and PostgreSQL (`tests/storage/test_installation_store_conformance.py`). Every
write to an account's installation or credentials bumps `Installation.revision` in the
same transaction and tells the process's `AccountChanges` listeners, so caches of these
facts (`installations/facts.py`) can never serve a credential that was changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from server.installations.model import (
    Credential,
    CredentialKind,
    CredentialSummary,
    Installation,
    OAuthState,
    SettingsChange,
)
from server.sender import SenderPolicy

# What an applied lifecycle event does to the account's credentials.
CredentialDrop = Literal["none", "api_keys_of_others", "everything"]


@dataclass(frozen=True, slots=True)
class LifecycleChange:
    """One lifecycle event, decided by the lifecycle service, for the store to record/apply."""

    digest: str
    account_id: str
    event_type: str
    data: Any  # the body's `data`, recorded as received
    timestamp: datetime | None
    now: datetime
    # The account's facts the event carries (`Installation` fields: tier, version,
    # subscription, last event type, ...): set only if no newer event was applied.
    facts: Mapping[str, Any]
    # `install` / `uninstall` only: the installed state and the installer (with `drop`),
    # ordered against the other installs and uninstalls alone, so a newer subscription event
    # that arrived first does not make an uninstall or a reinstall stale. None: a
    # subscription event, which changes neither.
    installation: Mapping[str, Any] | None = None
    # More fields, set only when monday had never told us about the account before.
    values_if_new: Mapping[str, Any] = field(default_factory=dict)
    # With `installation`: which credentials it deletes.
    drop: CredentialDrop = "none"
    # With `api_keys_of_others`: whose API key stays (None: nobody's).
    keep_user_id: str | None = None


class LifecycleResult(StrEnum):
    APPLIED = "applied"
    REPLAYED = "replayed"  # the same body was recorded before: nothing changed
    # Older than the last applied event of its kind (an install or uninstall: than the last
    # of those; a subscription event: than any): recorded, nothing changed.
    STALE = "stale"


class AccountChanges:
    """In-process listeners told, after each commit, which account's facts changed."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[str], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def changed(self, account_id: str) -> None:
        for listener in self._listeners:
            listener(account_id)


class InstallationStore(Protocol):
    """The `installations` and `lifecycle_events` tables."""

    async def get(self, account_id: str) -> Installation | None: ...

    async def revision(self, account_id: str) -> int | None:
        """The account's revision (one indexed read); None when there is no row."""
        ...

    async def set_sender_policy(
        self, account_id: str, policy: SenderPolicy, *, now: datetime | None = None
    ) -> Installation: ...

    async def change_settings(
        self, account_id: str, change: SettingsChange, *, now: datetime | None = None
    ) -> Installation:
        """`PATCH /installation`'s keys (contract §12), one transaction."""
        ...

    async def claim_installer(
        self, account_id: str, user_id: str, *, now: datetime | None = None
    ) -> Installation: ...

    async def record_lifecycle(self, change: LifecycleChange) -> LifecycleResult: ...


class CredentialStore(Protocol):
    """The `credentials` table; it alone encrypts and decrypts (with the app's cipher)."""

    async def get(
        self, account_id: str, user_id: str, kind: CredentialKind
    ) -> Credential | None: ...

    async def list(self, account_id: str) -> Sequence[CredentialSummary]: ...

    async def put(
        self,
        *,
        account_id: str,
        user_id: str,
        kind: CredentialKind,
        secret: str,
        refresh_secret: str | None = None,
        expires_at: datetime | None = None,
        scope: str | None = None,
        now: datetime | None = None,
    ) -> Credential: ...

    async def replace_oauth_tokens(
        self,
        credential: Credential,
        *,
        access_token: str,
        refresh_token: str | None,
        expires_at: datetime | None,
        scope: str | None,
        now: datetime | None = None,
    ) -> Credential | None: ...

    async def mark_needs_reconnect(
        self, account_id: str, user_id: str, kind: CredentialKind
    ) -> None: ...

    async def delete(self, account_id: str, user_id: str, kind: CredentialKind) -> bool: ...


class OAuthStateStore(Protocol):
    """The `oauth_states` table (the PKCE verifier is encrypted by the store)."""

    async def create(
        self,
        *,
        state_digest: str,
        account_id: str,
        user_id: str,
        code_verifier: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> None: ...

    async def consume(self, state_digest: str, *, now: datetime) -> OAuthState | None: ...
