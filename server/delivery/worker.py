"""The delivery worker: a background task in every server process.

It claims due rows (retries whose time has come, rows a crashed instance left behind),
sends them, and turns rows stuck in `sending` past their lease into `unknown`. On
shutdown it finishes the batch in flight before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from server.clock import utcnow
from server.delivery.deliver import Deliverer

log = logging.getLogger(__name__)


@dataclass
class DeliveryWorker:
    deliverer: Deliverer
    poll_seconds: float = 1.0
    lease_seconds: int = 60
    claim_limit: int = 100
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
        """One pass: expire stale `sending` rows, claim due rows, deliver. Returns rows sent."""
        outbox = self.deliverer.outbox
        await outbox.expire_stale_sending()
        rows = await outbox.claim(
            self.deliverer.owner, lease_seconds=self.lease_seconds, limit=self.claim_limit
        )
        if rows:
            await self.deliverer.deliver(rows)
        return len(rows)

    async def _run(self) -> None:
        while not self._stop.is_set():
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
