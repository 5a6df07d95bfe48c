"""The change bus: every committed write to notification rows reaches every subscriber.

Stores call `publish` (synchronous, never blocks, never raises) after commit. A pump task
resolves the accounts of id-only changes (the outbox's), hands each change to the local
`Hub`, and on PostgreSQL also sends it to the other instances with `NOTIFY`. Each instance
holds one `LISTEN` connection (asyncpg), sends its own `NOTIFY`s on it (through the pool
while it is being replaced) and hands what other instances sent to its hub; its
own notifications are recognised by the instance id and skipped (they were delivered locally
already). On SQLite there is one process, so the local hub is everything.

A change that cannot be queued (the pump is `MAX_PENDING` behind) is dropped and counted:
delivery must never wait for realtime listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from server.notifications.changes import RowChange
from server.storage.tables import notifications

log = logging.getLogger(__name__)

CHANNEL = "monday_notify_changes"
MAX_PENDING = 10_000
# NOTIFY payloads must stay under 8000 bytes: a change with many ids goes in several, each
# filled up to this many bytes (a delete's ids carry their owners: several times the bytes).
NOTIFY_BYTES = 7_500
LISTEN_RETRY_SECONDS = 1.0
# At most this many queued changes are sent to the other instances in one transaction.
NOTIFY_BATCH = 100
# Seconds a NOTIFY may take on the LISTEN connection before the pool sends it instead.
NOTIFY_TIMEOUT = 5.0
# One statement for a batch's payloads (in order: NOTIFYs of one transaction are delivered in
# the order they were sent).
_NOTIFY_ALL = text(
    "SELECT pg_notify(:channel, payload) FROM unnest(CAST(:payloads AS text[]))"
    " WITH ORDINALITY AS p(payload, n) ORDER BY n"
)

# The same, as asyncpg takes it on the LISTEN connection.
_NOTIFY_RAW = (
    "SELECT pg_notify($1, payload) FROM unnest($2::text[])"
    " WITH ORDINALITY AS p(payload, n) ORDER BY n"
)

Deliver = Callable[[RowChange], None]


def encode(instance: str, change: RowChange) -> list[str]:
    """The NOTIFY payloads of `change`, each at most `NOTIFY_BYTES` long (PostgreSQL refuses
    a payload of 8000 bytes or more, and with it the whole batch's statement)."""
    owners = {row_id: (r, s) for row_id, r, s in change.owners}
    header: dict[str, Any] = {"i": instance, "e": change.event, "a": change.account_id}
    room = NOTIFY_BYTES - _size({**header, "ids": [], "o": []})
    out: list[str] = []
    ids: list[int] = []
    used = 0
    for row_id in change.ids:
        owner = [row_id, *owners[row_id]] if row_id in owners else None
        # Its id in "ids", its entry in "o", and a comma before each.
        cost = _size(row_id) + 1 + (_size(owner) + 1 if owner is not None else 0)
        if ids and used + cost > room:
            out.append(_payload(header, ids, owners))
            ids, used = [], 0
        ids.append(row_id)
        used += cost
    if ids:
        out.append(_payload(header, ids, owners))
    return out


def _size(value: Any) -> int:
    # Payloads are ASCII (json.dumps escapes the rest), so characters are bytes.
    return len(json.dumps(value, separators=(",", ":")))


def _payload(header: dict[str, Any], ids: Sequence[int], owners: dict[int, tuple[str, str]]) -> str:
    body = {**header, "ids": list(ids)}
    if owners:
        body["o"] = [[i, *owners[i]] for i in ids if i in owners]
    return json.dumps(body, separators=(",", ":"))


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
    """The database URL the LISTEN connection is made from (`asyncpg_connect_args`); None
    for SQLite."""
    if not database_url.startswith("postgresql+asyncpg://"):
        return None
    return database_url


def asyncpg_connect_args(database_url: str, accepted: Iterable[str]) -> dict[str, Any]:
    """`asyncpg.connect`'s arguments for `database_url`, read the way SQLAlchemy reads it for
    the engine's own connections: a `?host=` query parameter wins over the URL's host, and
    SQLAlchemy's own options (`prepared_statement_cache_size`) are not sent to the server.
    (Handing asyncpg the URL itself sent such an option to PostgreSQL as a setting, which
    refused it, and connected to the URL's host where the engine used `?host=`.)"""
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

    dialect: Any = PGDialect_asyncpg  # untyped in SQLAlchemy's stubs
    _args, kwargs = dialect().create_connect_args(make_url(database_url))
    names = set(accepted)
    return {name: value for name, value in kwargs.items() if name in names}


class ChangeBus:
    """Publishes row changes to the local hub and, on PostgreSQL, to the other instances."""

    def __init__(
        self,
        engine: AsyncEngine,
        deliver: Deliver,
        dsn: str | None = None,
        *,
        listening: Callable[[], bool] = lambda: True,
    ) -> None:
        self.engine = engine
        self.deliver = deliver
        self.dsn = dsn
        # Whether anyone on this instance listens (the hub has a connection).
        self.listening = listening
        self.instance = secrets.token_hex(8)
        self.dropped = 0
        self._pending: asyncio.Queue[RowChange] = asyncio.Queue(MAX_PENDING)
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: Any = None
        self._closing = False

    def publish(self, change: RowChange) -> None:
        """Queue `change` (called by the stores after commit). Never blocks."""
        if self.dsn is None and not self.listening():
            # SQLite (one instance) and no connection here: nobody to tell. A connection that
            # joins later reads its subscriptions' `init` after joining, so it misses nothing.
            return
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
            changes = [await self._pending.get()]
            # What queued meanwhile goes out with it: one NOTIFY transaction for all of them
            # (one per change was a transaction per write of the send path, on PostgreSQL).
            while len(changes) < NOTIFY_BATCH and not self._pending.empty():
                changes.append(self._pending.get_nowait())
            try:
                await self._publish(changes)
            finally:
                for _ in changes:
                    self._pending.task_done()

    async def _publish(self, changes: Sequence[RowChange]) -> None:
        resolved: list[RowChange] = []
        for change in changes:
            try:
                for one in await self._resolve(change):
                    self.deliver(one)
                    resolved.append(one)
            except Exception:  # one bad change (or a database hiccup) must not stop the pump
                log.exception("realtime change could not be published")
        if self.dsn is None or not resolved:
            return
        try:
            await self._notify(resolved)
        except Exception:
            log.exception("realtime changes could not be sent to the other instances")

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

    async def _notify(self, changes: Sequence[RowChange]) -> None:
        payloads = [payload for change in changes for payload in encode(self.instance, change)]
        listener = self._listener
        if listener is not None and not listener.is_closed():
            # On the LISTEN connection: one statement, committed by itself (the changes are
            # committed already), no pool checkout and no BEGIN/COMMIT round trips (through
            # the pool, the batches cost the send path ~0.4 transactions a send).
            try:
                await listener.execute(_NOTIFY_RAW, CHANNEL, payloads, timeout=NOTIFY_TIMEOUT)
                return
            except Exception:  # the connection went away (it is being replaced) or hangs
                log.warning("realtime: NOTIFY on the LISTEN connection failed; using the pool")
        async with self.engine.begin() as conn:
            await conn.execute(_NOTIFY_ALL, {"channel": CHANNEL, "payloads": payloads})

    # ------------------------------------------------------------ in (PostgreSQL)

    async def _listen(self) -> None:
        import asyncpg  # type: ignore[import-untyped]  # only on PostgreSQL

        assert self.dsn is not None
        accepted = inspect.signature(asyncpg.connect).parameters
        conn = await asyncpg.connect(**asyncpg_connect_args(self.dsn, accepted))
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
