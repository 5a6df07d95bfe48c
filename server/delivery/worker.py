"""The delivery worker: a background task in every server process.

It claims due rows (retries whose time has come, rows a crashed instance left behind),
sends them, and turns rows stuck in `sending` past their lease into `unknown`. On
shutdown it finishes the batch in flight before the process exits. Once an hour it also
purges the data of accounts uninstalled for UNINSTALL_RETENTION_DAYS
(storage/retention.py); every instance may do so, the purge is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from server.clock import utcnow
from server.delivery.deliver import Deliverer
from server.delivery.resend import RESEND_WINDOW
from server.notifications.model import DeliveryStatus

log = logging.getLogger(__name__)


@dataclass
class DeliveryWorker:
    deliverer: Deliverer
    poll_seconds: float = 1.0
    lease_seconds: int = 60
    claim_limit: int = 100
    # The retention purge (storage/retention.py), wired by the composition root so
    # delivery does not import the installations side; None: no purge in this process.
    purge: Callable[[], Awaitable[object]] | None = None
    purge_every_seconds: float = 3600.0
    # Contract §12: moves due `scheduled` rows to `queued` before each claim (wired by the
    # composition root); None: nothing is ever scheduled in this process.
    release_scheduled: Callable[[], Awaitable[object]] | None = None
    _next_purge: float = 0.0  # monotonic; 0 = at the first pass
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="delivery-worker")

    def wake(self) -> None:
        """Look for due rows now rather than at the next poll."""
        self._wake.set()

    def stop_claiming(self) -> None:
        """Claim nothing more; the batch in flight goes on (await `stop` for it). Called as
        shutdown begins: aiohttp then waits for requests in flight, and rows that fall due
        meanwhile belong to the instances that stay up."""
        self._stop.set()
        self._wake.set()

    async def stop(self) -> None:
        """Graceful: let the batch in flight finish, then return."""
        self.stop_claiming()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> int:
        """One pass: expire stale `sending` rows, claim due rows (and `unknown` rows due for a
        retry with their first request, contract §11) in one fair claim, send them. Returns
        rows handled.

        One claim, not one per kind: a pass is one delivery batch, so a row that falls due
        waits for at most the batch in flight, whatever the other accounts' backlogs."""
        outbox = self.deliverer.outbox
        await outbox.expire_stale_sending()
        if self.release_scheduled is not None:
            await self.release_scheduled()
        rows = await outbox.claim(
            self.deliverer.owner,
            lease_seconds=self.lease_seconds,
            limit=self.claim_limit,
            resend_since=utcnow() - RESEND_WINDOW,
        )
        unknown = [row for row in rows if row.delivery_status == DeliveryStatus.UNKNOWN]
        due = [row for row in rows if row.delivery_status != DeliveryStatus.UNKNOWN]
        # Both at once: neither kind waits for the other's HTTP calls (nor outlives its
        # lease doing so).
        results = await asyncio.gather(
            self.deliverer.deliver(due) if due else _nothing(),
            self.deliverer.redeliver(unknown) if unknown else _nothing(),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return len(rows)

    async def purge_if_due(self) -> None:
        """The retention purge (bounded batches, short transactions), at most once an interval."""
        if self.purge is None or time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + self.purge_every_seconds
        try:
            await self.purge()
        except Exception:
            log.exception("retention purge failed; trying again at the next interval")

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self.purge_if_due()
            if self._stop.is_set():
                break  # the purge can take a while: shutdown may have begun meanwhile
            try:
                handled = await self.run_once()
            except Exception:
                # A database hiccup must not kill delivery for the life of the process.
                log.exception("delivery pass failed; trying again")
                handled = 0
            if handled:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._idle_seconds())
        # Shutdown progress for the operator: nothing is claimed by this process after this.
        log.info("delivery worker stopped")

    def _idle_seconds(self) -> float:
        """Until the next poll, or sooner when a row this process scheduled falls due."""
        due = self.deliverer.next_due
        if due is None:
            return self.poll_seconds
        until = (due - utcnow()).total_seconds()
        if until < 0:
            self.deliverer.next_due = None
            return self.poll_seconds
        return min(self.poll_seconds, until + 0.01)


async def _nothing() -> None:
    return None
