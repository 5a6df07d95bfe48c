"""What happens to a row the moment it becomes due (contract §12), before it goes to monday.

The `Deliverer` hands every batch it is about to send (inline or from the worker) to the
gate: rows whose recipient muted them end `suppressed`; rows that fall inside the account's
quiet hours, in the recipient's own time zone, wait `scheduled` until the quiet hours end
(unless the row may not wait: `urgent`, or an automation's; `Notification.may_wait`). What is
left is sent. The gate only decides and writes through the `ScheduleStore` port; time zones
come from `TimeZones`, which reads monday with the row's own credential and caches each
answer for a day.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from server.clock import utcnow
from server.delivery.digest import digest_rows
from server.monday.client import MondayClient
from server.monday.outcome import MondayError
from server.notifications.model import DeliveryStatus, DueFacts, Notification
from server.notifications.ports import ScheduleStore
from server.notifications.schedule_events import (
    QUIET_HOURS,
    scheduled_counts,
    suppressed_counts,
)
from server.notifications.schedule_rules import QuietHours, parse_hhmm, quiet_until, zone
from server.sender import CredentialRefusal

log = logging.getLogger(__name__)

TIME_ZONE_QUERY = "query ($ids: [ID!]) { users(ids: $ids) { id time_zone_identifier } }"
CACHE_SECONDS = 24 * 3600
# (account_id, sent_as, credential_owner, for_others) -> a token, or why there is none: the
# Deliverer's resolver.
Resolver = Callable[[str, str, str, bool], Awaitable[str | CredentialRefusal]]


@dataclass
class TimeZones:
    """Each recipient's IANA time zone as monday reports it, cached a day per (account, user).

    Read with the row's own credential (the one that will send it); when there is none, or
    monday does not answer or gives no zone, the recipient is taken to be in UTC (and that
    answer is cached for a shorter while, so a transient failure does not stick for a day).
    """

    monday: MondayClient
    resolve: Resolver
    _cache: dict[tuple[str, str], tuple[str | None, datetime]] = field(default_factory=dict)

    async def of(self, row: Notification) -> str | None:
        key = (row.account_id, row.recipient)
        now = utcnow()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        identifier, lasting = await self._ask(row)
        self._cache[key] = (identifier, now + timedelta(seconds=lasting))
        return identifier

    def cached(self, account_id: str, recipient: str) -> tuple[bool, str | None]:
        """(known, zone) from memory only: known is False when monday must be asked."""
        cached = self._cache.get((account_id, recipient))
        if cached is None or cached[1] <= utcnow():
            return False, None
        return True, cached[0]

    async def _ask(self, row: Notification) -> tuple[str | None, float]:
        # Never an automation's row: quiet hours do not hold those (`Notification.may_wait`).
        owner = row.credential_owner or ""
        token = await self.resolve(row.account_id, row.sent_as or "", owner, row.sender != owner)
        if isinstance(token, CredentialRefusal):
            return None, 300.0
        try:
            response = await self.monday.execute(token, TIME_ZONE_QUERY, {"ids": [row.recipient]})
        except MondayError:
            return None, 300.0
        users: Any = (response.data or {}).get("users") if isinstance(response.data, dict) else None
        for user in users or []:
            if isinstance(user, dict) and str(user.get("id")) == row.recipient:
                identifier = user.get("time_zone_identifier")
                return (str(identifier) if identifier else None), float(CACHE_SECONDS)
        return None, 300.0 if response.errors else float(CACHE_SECONDS)

    def forget(self) -> None:
        self._cache.clear()


@dataclass
class ScheduleGate:
    store: ScheduleStore
    time_zones: TimeZones

    async def __call__(self, rows: Sequence[Notification]) -> list[Notification]:
        """The rows to send now; the others are recorded as suppressed or held back."""
        if not rows:
            return []
        muted = await self.store.muted(rows)
        by_lease: dict[str, list[int]] = defaultdict(list)
        for row in rows:
            if row.id in muted and row.lease_owner is not None:
                by_lease[row.lease_owner].append(row.id)
        for owner, ids in by_lease.items():
            suppressed_counts[()] += await self.store.suppress(owner, ids)
        left = [row for row in rows if row.id not in muted]
        return await self._digests(await self._quiet_hours(left))

    def clear_due(self, rows: Sequence[Notification], facts: DueFacts) -> list[Notification]:
        """Of `rows` just inserted `queued` (due now, no digest yet), those `__call__` would
        let through untouched right now, decided from `facts` and the cached time zones only:
        not muted, and unable to wait (`may_wait`) or (outside the digest window's reach and
        outside quiet hours in a zone already known). A row this cannot decide is left out: it
        meets `__call__`."""
        now = utcnow()
        clear: list[Notification] = []
        for row in rows:
            if row.id in facts.muted or row.delivery_status != DeliveryStatus.QUEUED:
                continue
            if row.digest_id is not None:
                continue
            if row.may_wait:
                if row.account_id in facts.digest_accounts:
                    continue
                hours = facts.quiet_hours.get(row.account_id)
                if hours is not None:
                    known, identifier = self.time_zones.cached(row.account_id, row.recipient)
                    if not known:
                        continue
                    quiet = QuietHours(parse_hhmm(hours[0], "start"), parse_hhmm(hours[1], "end"))
                    if quiet_until(quiet, now, zone(identifier)) is not None:
                        continue
            clear.append(row)
        return clear

    async def _digests(self, rows: list[Notification]) -> list[Notification]:
        """Rows becoming due join (or open) their key's digest window and wait for its close;
        rows of a window that has closed go out together (see delivery/digest.py)."""
        return await digest_rows(self.store, rows)

    async def _quiet_hours(self, rows: list[Notification]) -> list[Notification]:
        # Only a row's first way out is held: a retry of a row already let through goes on.
        candidates = [r for r in rows if r.delivery_status == DeliveryStatus.QUEUED and r.may_wait]
        if not candidates:
            return rows
        quiet: dict[str, QuietHours | None] = {}
        for account_id in {row.account_id for row in candidates}:
            policy = await self.store.account_schedule(account_id)
            if policy.quiet_start and policy.quiet_end:
                quiet[account_id] = QuietHours(
                    parse_hhmm(policy.quiet_start, "start"), parse_hhmm(policy.quiet_end, "end")
                )
        if not quiet:
            return rows
        now = utcnow()
        held: dict[tuple[str, datetime], list[int]] = defaultdict(list)
        for row in candidates:
            hours = quiet.get(row.account_id)
            if hours is None:
                continue
            until = quiet_until(hours, now, zone(await self.time_zones.of(row)))
            if until is not None and row.lease_owner is not None:
                held[(row.lease_owner, until)].append(row.id)
        for (owner, until), ids in held.items():
            scheduled_counts[QUIET_HOURS] += await self.store.hold(
                owner, ids, until=until, reason="quiet_hours"
            )
        out = {row_id for ids in held.values() for row_id in ids}
        if out:
            log.info("quiet hours hold back %d notification(s)", len(out))
        return [row for row in rows if row.id not in out]
