"""The change bus: every committed write to notification rows reaches every subscriber.

Stores call `publish` (synchronous, never blocks, never raises) after commit. A pump task
resolves the accounts of id-only changes (the outbox's), hands each change to the local
`Hub`, and on PostgreSQL also sends it to the other instances with `NOTIFY`. Each instance
holds one `LISTEN` connection (asyncpg) and hands what other instances sent to its hub; its
own notifications are recognised by the instance id and skipped (they were delivered locally
already). On SQLite there is one process, so the local hub is everything.

A change that cannot be queued (the pump is `MAX_PENDING` behind) is dropped and counted:
delivery must never wait for realtime listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.notifications.changes import RowChange
from server.storage.tables import notifications

log = logging.getLogger(__name__)

CHANNEL = "monday_notify_changes"
MAX_PENDING = 10_000
# NOTIFY payloads must stay under 8000 bytes: a change with many ids goes in several.
IDS_PER_NOTIFY = 300
LISTEN_RETRY_SECONDS = 1.0

Deliver = Callable[[RowChange], None]


def encode(instance: str, change: RowChange) -> list[str]:
    """The NOTIFY payloads of `change` (each under the size limit)."""
    owners = {row_id: (r, s) for row_id, r, s in change.owners}
    out = []
    for start in range(0, len(change.ids), IDS_PER_NOTIFY):
        ids = change.ids[start : start + IDS_PER_NOTIFY]
        body: dict[str, Any] = {"i": instance, "e": change.event, "a": change.account_id}
        body["ids"] = list(ids)
        if owners:
            body["o"] = [[i, *owners[i]] for i in ids if i in owners]
        out.append(json.dumps(body, separators=(",", ":")))
    return out


def decode(payload: str) -> tuple[str, RowChange] | None:
    """(sending instance, change) from a NOTIFY payload; None for anything malformed."""
    try:
        body = json.loads(payload)
        owners = tuple((int(i), str(r), str(s)) for i, r, s in body.get("o", []))
        change = RowChange(body["e"], tuple(int(i) for i in body["ids"]), str(body["a"]), owners)
        if change.event not in ("create", "update", "delete"):
            return None
        return str(body["i"]), change
    except (ValueError, KeyError, TypeError):
        return None


def asyncpg_dsn(database_url: str) -> str | None:
    """The plain `postgresql://` DSN asyncpg takes; None for SQLite."""
    if not database_url.startswith("postgresql+asyncpg://"):
        return None
    return "postgresql://" + database_url.removeprefix("postgresql+asyncpg://")


class ChangeBus:
    """Publishes row changes to the local hub and, on PostgreSQL, to the other instances."""

    def __init__(self, engine: AsyncEngine, deliver: Deliver, dsn: str | None = None) -> None:
        self.engine = engine
        self.deliver = deliver
        self.dsn = dsn
        self.instance = secrets.token_hex(8)
        self.dropped = 0
        self._pending: asyncio.Queue[RowChange] = asyncio.Queue(MAX_PENDING)
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: Any = None
        self._closing = False

    def publish(self, change: RowChange) -> None:
        """Queue `change` (called by the stores after commit). Never blocks."""
        try:
            self._pending.put_nowait(change)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("realtime change dropped: the change bus is %d behind", MAX_PENDING)

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._pump(), name="realtime-pump"))
        if self.dsn is not None:
            await self._listen()

    async def stop(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()

    async def idle(self) -> None:
        """Wait until every published change was handed on (tests and benchmarks)."""
        await self._pending.join()

    # ------------------------------------------------------------ out

    async def _pump(self) -> None:
        while True:
            change = await self._pending.get()
            try:
                for resolved in await self._resolve(change):
                    self.deliver(resolved)
                    if self.dsn is not None:
                        await self._notify(resolved)
            except Exception:  # one bad change (or a database hiccup) must not stop the pump
                log.exception("realtime change could not be published")
            finally:
                self._pending.task_done()

    async def _resolve(self, change: RowChange) -> Sequence[RowChange]:
        """`change` split per account (the outbox's changes name only ids)."""
        if change.account_id is not None:
            return [change]
        stmt = select(notifications.c.id, notifications.c.account_id).where(
            notifications.c.id.in_(list(change.ids))
        )
        by_account: dict[str, list[int]] = {}
        async with self.engine.connect() as conn:
            for row_id, account in (await conn.execute(stmt)).all():
                by_account.setdefault(str(account), []).append(int(row_id))
        return [RowChange(change.event, tuple(ids), acc) for acc, ids in by_account.items()]

    async def _notify(self, change: RowChange) -> None:
        async with self.engine.begin() as conn:
            for payload in encode(self.instance, change):
                await conn.execute(select(func.pg_notify(CHANNEL, payload)))

    # ------------------------------------------------------------ in (PostgreSQL)

    async def _listen(self) -> None:
        import asyncpg  # type: ignore[import-untyped]  # only on PostgreSQL

        assert self.dsn is not None
        conn = await asyncpg.connect(self.dsn)
        await conn.add_listener(CHANNEL, self._on_notify)
        conn.add_termination_listener(self._on_lost)
        self._listener = conn

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        decoded = decode(payload)
        if decoded is None:
            log.warning("realtime: ignored a malformed change notification")
            return
        instance, change = decoded
        if instance != self.instance:
            self.deliver(change)

    def _on_lost(self, _conn: Any) -> None:
        if not self._closing:
            log.warning("realtime: the LISTEN connection was lost; reconnecting")
            self._tasks.append(asyncio.create_task(self._relisten(), name="realtime-relisten"))

    async def _relisten(self) -> None:
        while not self._closing:
            try:
                await self._listen()
                return
            except (OSError, Exception):
                await asyncio.sleep(LISTEN_RETRY_SECONDS)
