"""Send claimed ledger rows to monday and record each outcome (contract §6).

Rows that share a credential go out as one document of aliased `create_notification`
fields (batch size from settings; 1 turns batching off). A per-alias error fails only
its own row. What may have reached monday without an answer becomes `unknown` and is
never retried; what monday proved it did not execute is retried later.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from server.delivery import outbox
from server.monday.client import MondayClient, NotificationRequest
from server.monday.outcome import SendOutcome

log = logging.getLogger(__name__)

# (account_id, sent_as, credential_owner) -> an API token, or None if none is usable now.
CredentialResolver = Callable[[str, str, str], Awaitable[str | None]]
# Called when monday rejects a stored credential (401): it must be reconnected.
ReconnectMarker = Callable[[str, str, str], Awaitable[None]]

delivery_counts: Counter[tuple[str, str, str]] = Counter()  # (sent_as, transport, status)
monday_errors: Counter[str] = Counter()
retries_scheduled: Counter[str] = Counter()


@dataclass
class ShortLivedTokens:
    """Automation short-lived tokens, kept in memory only for the few minutes they live."""

    lifetime_seconds: float = 300.0
    _tokens: dict[int, tuple[str, float]] = field(default_factory=dict)

    def put(self, row_id: int, token: str) -> None:
        self._tokens[row_id] = (token, time.monotonic() + self.lifetime_seconds)

    def get(self, row_id: int) -> str | None:
        entry = self._tokens.get(row_id)
        if entry is None or entry[1] < time.monotonic():
            self._tokens.pop(row_id, None)
            return None
        return entry[0]

    def drop(self, row_id: int) -> None:
        self._tokens.pop(row_id, None)


@dataclass
class Deliverer:
    """Everything delivery needs; one per server process."""

    engine: AsyncEngine
    monday: MondayClient
    resolve: CredentialResolver
    mark_reconnect: ReconnectMarker
    owner: str
    batch_size: int = 25
    max_attempts: int = 8
    short_lived: ShortLivedTokens = field(default_factory=ShortLivedTokens)

    async def deliver(self, rows: Sequence[dict[str, Any]]) -> None:
        """Send rows this process has claimed; every row ends with a recorded status."""
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            groups[(row["account_id"], row["sent_as"], row["credential_owner"])].append(row)
        for (account_id, sent_as, owner), group in groups.items():
            for start in range(0, len(group), self.batch_size):
                await self._deliver_group(
                    account_id, sent_as, owner, group[start : start + self.batch_size]
                )

    async def _token_for(
        self, account_id: str, sent_as: str, owner: str, row_id: int
    ) -> str | None:
        if owner == "short_lived":
            return self.short_lived.get(row_id)
        return await self.resolve(account_id, sent_as, owner)

    async def _deliver_group(
        self, account_id: str, sent_as: str, owner: str, rows: list[dict[str, Any]]
    ) -> None:
        token = await self._token_for(account_id, sent_as, owner, rows[0]["id"])
        if token is None:
            # The credential went away (uninstall, disconnect, expired short-lived token).
            for row in rows:
                await self._record(row, "failed", _error("NO_CREDENTIAL", _no_credential(owner)))
            return
        sending = await outbox.mark_sending(self.engine, self.owner, [row["id"] for row in rows])
        rows = [row for row in rows if row["id"] in set(sending)]
        if not rows:
            return
        requests = [
            NotificationRequest(
                user_id=row["recipient"],
                target_id=row["item"],
                text=row["message"],
                target_type=row["collection"],
            )
            for row in rows
        ]
        if len(requests) == 1:
            request = requests[0]
            outcomes = [
                await self.monday.create_notification(
                    token,
                    user_id=request.user_id,
                    target_id=request.target_id,
                    text=request.text,
                    target_type=request.target_type,
                )
            ]
        else:
            outcomes = await self.monday.create_notifications(token, requests)
        if any(outcome.unauthorized for outcome in outcomes) and owner != "short_lived":
            await self.mark_reconnect(account_id, sent_as, owner)
        for row, outcome in zip(rows, outcomes, strict=True):
            await self._apply(row, outcome)

    async def _apply(self, row: dict[str, Any], outcome: SendOutcome) -> None:
        error = None
        if outcome.status != "sent":
            error = {
                "code": outcome.code or "MONDAY_ERROR",
                "message": outcome.message or "monday did not accept the notification.",
                "monday_request_id": outcome.request_id,
            }
            monday_errors[outcome.code or "unknown"] += 1
        if outcome.status == "sent":
            await self._record(row, "sent", None, monday_id=outcome.monday_id)
        elif outcome.status == "retry":
            attempts = int(row["attempts"]) + 1
            if attempts >= self.max_attempts:
                assert error is not None
                error["code"] = "RETRIES_EXHAUSTED"
                error["message"] = (
                    f"monday refused {attempts} times: {outcome.message or outcome.code}"
                )
                await self._record(row, "failed", error)
            else:
                retries_scheduled[outcome.code or "unknown"] += 1
                await self._record(
                    row, "retry_scheduled", error, retry_after=outcome.retry_after_seconds
                )
        else:
            await self._record(row, outcome.status, error)

    async def _record(
        self,
        row: dict[str, Any],
        status: str,
        error: dict[str, Any] | None,
        *,
        monday_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        await outbox.finish(
            self.engine,
            self.owner,
            row["id"],
            delivery_status=status,
            error=error,
            monday_id=monday_id,
            retry_after=retry_after,
        )
        if status != "retry_scheduled":
            self.short_lived.drop(row["id"])
        delivery_counts[(row["sent_as"] or "", row["transport"] or "", status)] += 1


def _error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "monday_request_id": None}


def _no_credential(owner: str) -> str:
    if owner == "short_lived":
        return "The automation's short-lived token expired before the notification could be sent."
    return "The credential chosen for this notification is no longer connected: reconnect it in Settings."
