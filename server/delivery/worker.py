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

    async def stop(self) -> None:
        """Graceful: let the batch in flight finish, then return."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> int:
        """One pass: expire stale `sending` rows, claim due rows, deliver, retry due `unknown`
        rows with their first request. Returns rows handled."""
        outbox = self.deliverer.outbox
        await outbox.expire_stale_sending()
        if self.release_scheduled is not None:
            await self.release_scheduled()
        rows = await outbox.claim(
            self.deliverer.owner, lease_seconds=self.lease_seconds, limit=self.claim_limit
        )
        if rows:
            await self.deliverer.deliver(rows)
        # `unknown` rows whose request may be asked again with its key (contract §11).
        unknown = await outbox.claim_unknown(
            self.deliverer.owner,
            lease_seconds=self.lease_seconds,
            limit=self.claim_limit,
            since=utcnow() - RESEND_WINDOW,
        )
        if unknown:
            await self.deliverer.redeliver(unknown)
        return len(rows) + len(unknown)

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
