"""Installation and credential facts for the send path, cached in memory.

Every send needs the account's installation and up to three of its credentials (the
sender decision), and delivery needs the chosen one decrypted. Reading them costs an
installation read and up to three credential reads with decryption per send; the cache
keeps them per account, so a send costs one indexed read of the account's `revision`.

Invalidation (contract §4: a revoked credential must not be used):

- In this process, every store write tells `AccountChanges`, which drops the account's
  entry at once (lifecycle events, sender policy, API key connect/disconnect, OAuth
  connect/refresh, `needs_reconnect`, retention purge).
- Across instances, through the database: every such write bumps `installations.revision`
  in its own transaction. `installation()` (called first by every send decision) and
  `CredentialResolver.resolve` (before every delivery attempt) read the revision by primary
  key and reload the entry when it moved. So once instance B's disconnect or uninstall has
  committed, instance A's next send decision and next delivery attempt do not use the
  revoked credential: the bound is the time between that revision read and the monday
  call, the same window a send without cache has between reading a credential and using it.
- The inline attempt of a send (`CredentialResolver.resolve` in the same request, i.e. the
  same asyncio context) reuses the check its own send decision made, if that is under
  `REUSE_SECONDS` old and the entry was not invalidated since: between the two there is
  only the send's insert, and the window between a check and the monday call is the one
  above. Every other attempt (the worker's, a retry) reads the revision itself.
- `credential()` without a check of its own reuses the entry checked by the same send's
  `installation()` call if that check is under `REUSE_SECONDS` (1 s) old, else it checks.
  That is the worst-case bound for a lookup that is not preceded by a send's check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from server.installations.credentials import OAuthRefresher
from server.installations.model import (
    Credential,
    CredentialKind,
    Installation,
    credential_kind,
)
from server.installations.ports import (
    AccountChanges,
    CredentialStore,
    InstallationStore,
)
from server.monday.outcome import MondayError
from server.sender import (
    DEFAULT_POLICY,
    POLICIES,
    CredentialRefusal,
    InstallationFacts,
    SenderPolicy,
    policy_allows,
)

REUSE_SECONDS = 1.0
MAX_ACCOUNTS = 10_000


# The entry this asyncio context (a request, and the tasks it starts) last checked against
# the database's revision, and when (monotonic): see "The inline attempt" above.
_context_check: ContextVar[tuple[object, float] | None] = ContextVar(
    "installation_context_check", default=None
)


@dataclass
class _Entry:
    revision: int | None  # None: the account had no installation row
    installation: Installation | None
    checked_at: float
    credentials: dict[tuple[str, CredentialKind], Credential | None] = field(default_factory=dict)


class InstallationCache:
    """Per-account installation and decrypted credentials, revalidated by `revision`."""

    def __init__(
        self,
        installations: InstallationStore,
        credentials: CredentialStore,
        changes: AccountChanges,
        *,
        max_accounts: int = MAX_ACCOUNTS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.installations = installations
        self.credentials = credentials
        self.max_accounts = max_accounts
        self._monotonic = monotonic
        self._entries: dict[str, _Entry] = {}
        # Bumped by each invalidation: a load that overlapped one is not kept.
        self._generation: dict[str, int] = {}
        changes.subscribe(self.invalidate)

    def invalidate(self, account_id: str) -> None:
        """Forget the account's facts (a store write in this process changed them)."""
        self._entries.pop(account_id, None)
        self._generation[account_id] = self._generation.get(account_id, 0) + 1
        if len(self._generation) > self.max_accounts:
            self._generation.clear()  # generations only need to differ during a load

    async def _checked(self, account_id: str) -> _Entry:
        """The account's entry, after one indexed read of its revision (reloaded if moved)."""
        entry = self._entries.get(account_id)
        if entry is not None and entry.revision is not None:
            revision = await self.installations.revision(account_id)
            if revision == entry.revision and self._entries.get(account_id) is entry:
                entry.checked_at = self._monotonic()
                _context_check.set((entry, entry.checked_at))
                return entry
        generation = self._generation.get(account_id, 0)
        installation = await self.installations.get(account_id)
        entry = _Entry(
            revision=installation.revision if installation is not None else None,
            installation=installation,
            checked_at=self._monotonic(),
        )
        # Without an installation row there is no revision to compare, so such an
        # account's facts are read again at every check (only never-installed accounts).
        if entry.revision is not None and self._generation.get(account_id, 0) == generation:
            if account_id not in self._entries and len(self._entries) >= self.max_accounts:
                self._entries.pop(next(iter(self._entries)))  # the oldest entry
            self._entries[account_id] = entry
            _context_check.set((entry, entry.checked_at))
        return entry

    async def installation(
        self, account_id: str, *, reuse_context_check: bool = False
    ) -> Installation | None:
        """The account's installation, checked against the database's revision now; with
        `reuse_context_check`, the check this context made under `REUSE_SECONDS` ago, if the
        entry is still current, counts (module docstring)."""
        if reuse_context_check:
            entry = self._entries.get(account_id)
            seen = _context_check.get()
            if (
                entry is not None
                and seen is not None
                and seen[0] is entry
                and self._monotonic() - seen[1] < REUSE_SECONDS
            ):
                return entry.installation
        return (await self._checked(account_id)).installation

    def unchecked(self, account_id: str) -> tuple[Installation | None, int] | None:
        """The cached installation and the revision it was read at, with no read at all;
        None when not cached. The caller must confirm the revision in its own write
        (`SqlNotificationRows.insert`'s `expect_revision`) before anything is sent."""
        entry = self._entries.get(account_id)
        if entry is None or entry.revision is None:
            return None
        return entry.installation, entry.revision

    def confirmed(self, account_id: str, revision: int) -> None:
        """A write saw `revision` in its transaction: the entry (if still the one read at
        that revision) counts as checked now, in this context too (module docstring)."""
        entry = self._entries.get(account_id)
        if entry is not None and entry.revision == revision:
            entry.checked_at = self._monotonic()
            _context_check.set((entry, entry.checked_at))

    async def credential(
        self,
        account_id: str,
        user_id: str,
        kind: CredentialKind,
        *,
        check: bool = False,
        unchecked: bool = False,
    ) -> Credential | None:
        """The decrypted credential (None if there is none); see the module's bound. With
        `unchecked`, from the cached entry whatever its age (the caller confirms the
        revision in its write, as for `unchecked()`)."""
        entry = self._entries.get(account_id)
        fresh = entry is not None and (
            unchecked or self._monotonic() - entry.checked_at < REUSE_SECONDS
        )
        if check or entry is None or not fresh:
            entry = await self._checked(account_id)
        key = (user_id, kind)
        if key in entry.credentials:
            return entry.credentials[key]
        generation = self._generation.get(account_id, 0)
        credential = await self.credentials.get(account_id, user_id, kind)
        if entry.revision is not None and self._generation.get(account_id, 0) == generation:
            entry.credentials[key] = credential
        return credential


def installation_facts(installation: Installation | None) -> InstallationFacts:
    """What the sender decision needs to know about an account's installation."""
    if installation is None:
        return InstallationFacts(known=False, installed=False, installer_user_id=None)
    # A row that no lifecycle event wrote and nobody installed (e.g. only a policy was saved
    # in local development) does not mean "uninstalled": monday never told us that.
    known = installation.from_lifecycle or installation.installed
    policy: SenderPolicy = (
        installation.sender_policy if installation.sender_policy in POLICIES else DEFAULT_POLICY
    )
    return InstallationFacts(
        known=known,
        installed=installation.installed,
        installer_user_id=installation.installer_user_id,
        sender_policy=policy,
    )


@dataclass(frozen=True, slots=True)
class InstallationFactsReader:
    """The send service's `SenderFactsSource`, over the cache."""

    cache: InstallationCache

    async def installation(self, account_id: str) -> InstallationFacts:
        return installation_facts(await self.cache.installation(account_id))

    def unchecked_installation(self, account_id: str) -> tuple[InstallationFacts, int] | None:
        cached = self.cache.unchecked(account_id)
        if cached is None:
            return None
        return installation_facts(cached[0]), cached[1]

    def confirmed(self, account_id: str, revision: int) -> None:
        self.cache.confirmed(account_id, revision)

    async def credential_usable(
        self, account_id: str, user_id: str, kind: str, *, unchecked: bool = False
    ) -> bool:
        credential = await self.cache.credential(
            account_id, user_id, credential_kind(kind), unchecked=unchecked
        )
        return credential is not None and not credential.needs_reconnect


@dataclass(frozen=True, slots=True)
class CredentialResolver:
    """Delivery's view of credentials: a usable token per sender, and "needs reconnect"."""

    cache: InstallationCache
    refresher: OAuthRefresher

    async def resolve(
        self, account_id: str, sent_as: str, owner: str, for_others: bool
    ) -> str | CredentialRefusal:
        """The token to send as `sent_as` with `owner`'s credential, or why there is none."""
        # Checked against the database's revision before every attempt; the inline attempt
        # reuses its own send decision's check (module docstring).
        facts = installation_facts(
            await self.cache.installation(account_id, reuse_context_check=True)
        )
        if facts.known and not facts.installed:
            return CredentialRefusal(
                "NO_CREDENTIAL",
                "The app was uninstalled from this account, and its credentials with it.",
            )
        if not policy_allows(facts.sender_policy, sent_as):
            # README "Who a notification is sent as": a sender is never one the policy in
            # force does not allow, even for a row decided (scheduled, retried) before an
            # admin changed the policy.
            return CredentialRefusal(
                "SENDER_NOT_ALLOWED",
                f"The account's sender policy is now {facts.sender_policy}, which does "
                f"not allow sending as the {sent_as}: send it again to have it decided under "
                "that policy.",
            )
        if (sent_as == "installer" or for_others) and not (
            facts.installed and facts.installer_user_id == owner
        ):
            # Contract §10: a credential is only used for its own owner. The installer's key
            # (or the installer's OAuth token lent to another caller) is usable only while
            # its owner IS the current installer: a row queued before a reinstall by another
            # admin fails NO_CREDENTIAL instead of going out with the former installer's key.
            return CredentialRefusal(
                "NO_CREDENTIAL",
                "The credential chosen for this notification belongs to the user who installed "
                "the app then, who is no longer its installer (it was reinstalled), so it is "
                "not used for anyone else.",
            )
        kind: CredentialKind = "api_key" if sent_as == "installer" else "oauth"
        credential = await self.cache.credential(account_id, owner, kind)
        if credential is not None and credential.kind == "oauth":
            # monday's newer OAuth: refresh a token that expires within 5 minutes first.
            try:
                credential = await self.refresher.fresh(credential)
            except MondayError:
                return CredentialRefusal(
                    "NO_CREDENTIAL",
                    "The OAuth token chosen for this notification expired and monday could "
                    "not be reached to refresh it.",
                )
        if credential is None or credential.needs_reconnect:
            return CredentialRefusal(
                "NO_CREDENTIAL",
                "The credential chosen for this notification is no longer connected: "
                "reconnect it in Settings.",
            )
        return credential.secret

    async def reconnect(self, account_id: str, sent_as: str, owner: str) -> None:
        kind: CredentialKind = "api_key" if sent_as == "installer" else "oauth"
        await self.refresher.credentials.mark_needs_reconnect(account_id, owner, kind)
