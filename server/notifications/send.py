"""Create = send (contract §5-§6): decide the sender, write the rows, forward, record.

Every surface (Directus REST and GraphQL, the monday-compatible `/v2`, automations)
calls `SendService.send`, so there is one send path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from server.delivery import outbox
from server.delivery.deliver import Deliverer
from server.installations.crypto import CredentialCipher
from server.installations.store import Installation, get_credential, get_installation
from server.monday.client import CREATE_NOTIFICATION
from server.notifications.inputs import NotificationInput
from server.notifications.send_limit import SendRateLimiter
from server.notifications.store import AuditEntry, fetch_rows, insert_rows, write_audit
from server.sender import (
    DEFAULT_POLICY,
    POLICIES,
    Caller,
    ConnectedCredentials,
    InstallationFacts,
    SenderDecision,
    SenderPolicy,
    SenderRefused,
    SenderRequest,
    decide_sender,
)

AUTOMATION = "automation"  # the surface of `POST /monday/actions/*`

# Rows accepted into the ledger, by (sent_as, transport); read by /metrics.
accepted_counts: Counter[tuple[str, str]] = Counter()


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Who asks, from where, and what they may use."""

    account_id: str
    user_id: str
    is_view_only: bool = False
    is_guest: bool = False
    surface: str = "rest"
    relay_capable: bool = False
    short_lived_token: str | None = None
    idempotency_key: str | None = None

    def audit(
        self,
        hint: str | None,
        policy: str,
        outcome: str,
        reason: str,
        decision: SenderDecision | None = None,
    ) -> AuditEntry:
        """The audit row of one decision (or refusal) for this request."""
        return AuditEntry(
            self.account_id, self.user_id, self.surface, hint, policy, outcome, reason, decision
        )


def installation_facts(installation: Installation | None) -> InstallationFacts:
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


def relay_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The exact mutation and variables a view runs through monday's seamless `api()`."""
    return {
        "query": CREATE_NOTIFICATION,
        "variables": {
            "user_id": row["recipient"],
            "target_id": row["item"],
            "text": row["message"],
            "target_type": row["collection"],
        },
    }


@dataclass
class SendService:
    engine: AsyncEngine
    cipher: CredentialCipher
    deliverer: Deliverer
    lease_seconds: int = 60
    # Per-user rows-per-minute limit (settings.send_rate_per_minute); None or 0 = off.
    limiter: SendRateLimiter | None = None
    # How long a caller's request may wait for monday's limits before its rows are left
    # to the background worker (they answer `retry_scheduled` then).
    inline_max_wait: float = 2.0

    async def _usable(self, account_id: str, user_id: str | None, kind: str) -> bool:
        if user_id is None:
            return False
        credential = await get_credential(self.engine, self.cipher, account_id, user_id, kind)  # type: ignore[arg-type]
        return credential is not None and not credential.needs_reconnect

    async def connected(
        self, request: SendRequest, facts: InstallationFacts
    ) -> ConnectedCredentials:
        if request.surface == AUTOMATION:
            # An automation sends with its own short-lived token only (contract §10): no
            # stored credential of the account is even looked at.
            return ConnectedCredentials(short_lived_token=request.short_lived_token is not None)
        installer = facts.installer_user_id
        oauth = {
            user
            for user in {request.user_id, installer}
            if user is not None and await self._usable(request.account_id, user, "oauth")
        }
        return ConnectedCredentials(
            oauth_user_ids=frozenset(oauth),
            installer_api_key=await self._usable(request.account_id, installer, "api_key"),
            short_lived_token=request.short_lived_token is not None,
        )

    async def decide(
        self, request: SendRequest, items: Sequence[NotificationInput]
    ) -> tuple[list[SenderDecision], str]:
        """One decision per distinct `send_as` (and the policy); any refusal refuses all."""
        facts = installation_facts(await get_installation(self.engine, request.account_id))
        credentials = await self.connected(request, facts)
        caller = Caller(request.user_id, request.is_view_only, request.is_guest)
        decided: dict[str | None, SenderDecision] = {}
        for hint in dict.fromkeys(item.send_as for item in items):
            try:
                decided[hint] = decide_sender(
                    caller, facts, credentials, SenderRequest(hint, request.relay_capable)
                )
            except SenderRefused as refused:
                entry = request.audit(hint, facts.sender_policy, refused.code, refused.message)
                async with self.engine.begin() as connection:
                    await write_audit(connection, entry)
                raise
        return [decided[item.send_as] for item in items], facts.sender_policy

    async def send(
        self, request: SendRequest, items: Sequence[NotificationInput]
    ) -> list[dict[str, Any]]:
        """Decide, write the rows, forward those the server sends; return the rows as stored.

        Raises 429 `REQUESTS_EXCEEDED` (nothing written) when the user is over the send rate.
        """
        if self.limiter is not None:
            self.limiter.take(request.account_id, request.user_id, len(items))
        decisions, policy = await self.decide(request, items)
        lease = outbox.lease_token(self.deliverer.owner)
        async with self.engine.begin() as connection:
            ids = await insert_rows(
                connection,
                account_id=request.account_id,
                sender=request.user_id,
                items=items,
                decisions=decisions,
                idempotency_key=request.idempotency_key,
                lease_owner=lease,
                lease_seconds=self.lease_seconds,
            )
            for row_id, item, decision in zip(ids, items, decisions, strict=True):
                entry = request.audit(item.send_as, policy, "decided", decision.reason, decision)
                await write_audit(connection, entry, notification_id=row_id)
        for decision in decisions:
            accepted_counts[(decision.sent_as, decision.transport)] += 1
        server_ids = [
            row_id
            for row_id, decision in zip(ids, decisions, strict=True)
            if decision.transport == "server"
        ]
        if request.short_lived_token is not None:
            for row_id in server_ids:
                self.deliverer.short_lived.put(row_id, request.short_lived_token)
        if server_ids:
            # Already leased to this request at insert: no claim, no race with the worker.
            leased = await fetch_rows(self.engine, server_ids)
            await self.deliverer.deliver(leased, max_wait=self.inline_max_wait)
        return await fetch_rows(self.engine, ids)
