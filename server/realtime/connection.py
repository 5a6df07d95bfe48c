"""One realtime connection: Directus' WebSocket protocol for `directus_notifications` (§13).

Three tasks per connection, so nothing one client does can hold up another or delivery:

* the reader (the route's own task) parses client messages and answers them;
* the worker takes jobs (a subscription's `init`, a row change) from a bounded queue, re-reads
  the changed rows with each subscription's query under the caller's access rules, and queues
  the messages; it pauses while the token is expired (the grace period) and resumes on `auth`;
* the writer is the only one that writes to the socket, from a bounded queue.

When either queue is full the client is too far behind: it gets one error and is closed.
A watchdog task closes a connection that never authenticates, whose token expired without a
fresh one, or that stays silent across a ping interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from server.errors import ApiError
from server.logs import account_id_var
from server.notifications.changes import RowChange
from server.notifications.ledger import Ledger
from server.realtime.hub import Hub
from server.realtime.limits import COLLECTION, RealtimeLimits
from server.realtime.messages import (
    EVENTS,
    Subscription,
    client_message,
    error,
    parse_query_message,
    subscription_key,
    with_uid,
)
from server.realtime.shared_reads import SharedReads, share_text
from server.storage.notifications.visibility import reaches, visible
from server.tokens import Session

log = logging.getLogger(__name__)
Verify = Callable[[str], Session]
_CLOSE = object()  # the writer's "send nothing more, close" marker


class Closed(Exception):
    """The connection is closing; stop handling."""


class RealtimeConnection:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        verify: Verify,
        ledger: Ledger,
        hub: Hub,
        reads: SharedReads,
        limits: RealtimeLimits,
        leeway: int,
    ) -> None:
        self.ws = ws
        self.verify = verify
        self.ledger = ledger
        self.hub = hub
        self.reads = reads
        self.limits = limits
        self.leeway = leeway
        self.session: Session | None = None
        self.subscriptions: dict[str, Subscription] = {}
        self.expired_at: float | None = None  # when TOKEN_EXPIRED was sent (grace running)
        self.heard = True  # a message arrived since the last ping
        self.closing = False
        self.jobs: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(limits.max_pending_changes)
        self.out: asyncio.Queue[object] = asyncio.Queue(limits.max_pending_messages)
        self.authed = asyncio.Event()  # set while the token is valid
        self.wake = asyncio.Event()  # the watchdog recomputes its deadline
        self.started = limits.clock()

    # ------------------------------------------------------------ life

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._writer(), name="realtime-writer"),
            asyncio.create_task(self._worker(), name="realtime-worker"),
            asyncio.create_task(self._watchdog(), name="realtime-watchdog"),
        ]
        try:
            await self._reader()
        finally:
            self.closing = True
            if self.session is not None:
                self.hub.leave(self, self.session.account_id, self.session.user_id)
            with contextlib.suppress(asyncio.QueueFull):
                self.out.put_nowait(_CLOSE)
            # The writer gets a moment to flush a final error; the others just stop.
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(tasks[0]), timeout=1.0)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if not self.ws.closed:
                await self.ws.close()

    async def _reader(self) -> None:
        async for msg in self.ws:
            self.heard = True
            if msg.type == WSMsgType.TEXT:
                try:
                    await self._handle(msg.data)
                except Closed:
                    return
            elif msg.type == WSMsgType.BINARY:
                self.send(error("unknown", "INVALID_PAYLOAD", "Messages must be JSON text."))
            if self.closing:
                return

    async def _writer(self) -> None:
        while True:
            item = await self.out.get()
            if item is _CLOSE:
                code, reason = self._close_with
                await self.ws.close(code=code, message=reason.encode())
                return
            await self.ws.send_str(json.dumps(item, separators=(",", ":"), default=str))

    _close_with: tuple[int, str] = (WSCloseCode.OK, "")

    def send(self, message: dict[str, Any]) -> None:
        """Queue `message`; a client that let the queue fill is too far behind."""
        if self.closing:
            return
        try:
            self.out.put_nowait(message)
        except asyncio.QueueFull:
            self.fail_behind()

    def close(self, message: dict[str, Any] | None, code: int, reason: str) -> None:
        """Send `message` (if any), then close with `code`."""
        if self.closing:
            return
        if message is not None:
            self.send(message)
        self.closing = True
        self._close_with = (code, reason)
        try:
            self.out.put_nowait(_CLOSE)
        except asyncio.QueueFull:
            self._drop_and_close(message)

    def fail_behind(self) -> None:
        """Too far behind: drop what waits, say why, close (1013, try again later)."""
        if self.closing:
            return
        self.closing = True
        self._close_with = (WSCloseCode.TRY_AGAIN_LATER, "too far behind")
        self._drop_and_close(
            error(
                "subscription",
                "LIMIT_EXCEEDED",
                "The connection fell too far behind the changes; reconnect and subscribe again.",
            )
        )

    def _drop_and_close(self, message: dict[str, Any] | None) -> None:
        while not self.out.empty():
            self.out.get_nowait()
        if message is not None:
            self.out.put_nowait(message)
        self.out.put_nowait(_CLOSE)

    # ------------------------------------------------------------ the change feed

    def offer(self, change: RowChange) -> None:
        """A change in the caller's account (from the hub). Never blocks."""
        if self.closing or not self.subscriptions:
            return
        try:
            self.jobs.put_nowait(("change", change))
        except asyncio.QueueFull:
            self.fail_behind()

    async def _worker(self) -> None:
        while True:
            kind, job = await self.jobs.get()
            await self.authed.wait()  # hold changes during an expiry grace period
            session = self.session
            if session is None:
                continue
            account_id_var.set(session.account_id)  # the reads' lane (storage/readers.py)
            try:
                if kind == "init":
                    await self._init(session, job)
                else:
                    await self._change(session, job)
            except ApiError as exc:
                uid = job.uid if isinstance(job, Subscription) else None
                self.send(error("subscription", exc.code, exc.message, uid))
            except Exception:  # a read failed: this job is lost, not the ones after it
                log.exception("realtime: reading a %s for a subscription failed", kind)

    async def _init(self, session: Session, sub: Subscription) -> None:
        if self.subscriptions.get(sub.key) is not sub:
            return  # unsubscribed before its init was read
        message: dict[str, Any] = {"type": "subscription", "event": "init"}
        if sub.event is None:
            message["data"] = (await self.ledger.read_by_query(session, sub.query)).data
        self.send(with_uid(message, sub.uid))

    async def _change(self, session: Session, change: RowChange) -> None:
        if change.account_id != session.account_id:
            return
        for sub in list(self.subscriptions.values()):
            if sub.event is not None and sub.event != change.event:
                continue
            if change.event == "delete":
                scope = visible(session)
                ids = [
                    row_id
                    for row_id, recipient, sender in change.owners
                    if reaches(scope, change.account_id, recipient, sender)
                ]
                if ids:
                    message = {"type": "subscription", "event": "delete", "data": ids}
                    self.send(with_uid(message, sub.uid))
                continue
            step = self.limits.ids_per_read
            for start in range(0, len(change.ids), step):
                chunk = change.ids[start : start + step]
                read = partial(self.ledger.read_many, session, chunk, sub.query)
                rows = await self.reads.rows(change, start, session, sub.share, read)
                if rows and self.subscriptions.get(sub.key) is sub:
                    message = {"type": "subscription", "event": change.event, "data": rows}
                    self.send(with_uid(message, sub.uid))

    # ------------------------------------------------------------ timers

    async def _watchdog(self) -> None:
        limits = self.limits
        last_ping = limits.clock()
        while True:
            now = limits.clock()
            if self.session is None:
                deadline = self.started + limits.auth_timeout
                if now >= deadline:
                    self.close(
                        error("auth", "AUTH_FAILED", "No auth message arrived in time."),
                        WSCloseCode.POLICY_VIOLATION,
                        "auth timeout",
                    )
                    return
            elif self.expired_at is not None:
                deadline = self.expired_at + limits.expiry_grace
                if now >= deadline:
                    self.close(
                        error("auth", "AUTH_TIMEOUT", "The token expired and no new one came."),
                        WSCloseCode.POLICY_VIOLATION,
                        "auth timeout",
                    )
                    return
            else:
                deadline = self.session.expires_at + self.leeway
                if now >= deadline:
                    self.expired_at = now
                    self.authed.clear()
                    self.send(error("auth", "TOKEN_EXPIRED", "The token has expired."))
                    continue
            if now >= last_ping + limits.ping_interval:
                if not self.heard:
                    self.close(None, WSCloseCode.GOING_AWAY, "no heartbeat")
                    return
                self.heard = False
                last_ping = now
                self.send({"type": "ping"})
            deadline = min(deadline, last_ping + limits.ping_interval)
            self.wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=max(deadline - now, 0.0) + 0.01)

    # ------------------------------------------------------------ client messages

    async def _handle(self, text: str) -> None:
        try:
            message = client_message(text)
        except ApiError as problem:
            self.send(error("unknown", problem.code, problem.message))
            return
        kind = message.get("type")
        raw_uid = message.get("uid")
        uid = None if raw_uid is None else str(raw_uid)
        if kind == "auth":
            self._auth(message, uid)
        elif self.session is None:
            self.close(
                error("auth", "AUTH_FAILED", 'The first message must be {"type": "auth"}.', uid),
                WSCloseCode.POLICY_VIOLATION,
                "auth required",
            )
            raise Closed
        elif kind == "ping":
            self.send(with_uid({"type": "pong"}, uid))
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            self._subscribe(message, uid)
        elif kind == "unsubscribe":
            self._unsubscribe(uid)
        else:
            name = kind if isinstance(kind, str) else "unknown"
            text = f'"{str(kind)[:40]}" messages are not supported here; see docs/realtime.md.'
            self.send(error(name, "INVALID_PAYLOAD", text, uid))

    def _auth(self, message: dict[str, Any], uid: str | None) -> None:
        token = message.get("access_token")
        try:
            if not isinstance(token, str) or not token:
                raise ApiError(401, "TOKEN_MISSING", "access_token must be a session token.")
            session = self.verify(token)
        except ApiError as exc:
            self.close(
                error("auth", "AUTH_FAILED", exc.message, uid),
                WSCloseCode.POLICY_VIOLATION,
                "auth failed",
            )
            raise Closed from None
        current = self.session
        if current is None:
            if self.hub.connections(session.account_id, session.user_id) >= (
                self.limits.max_connections_per_user
            ):
                limit = self.limits.max_connections_per_user
                text = f"At most {limit} realtime connections per user; close another one first."
                self.close(
                    error("auth", "LIMIT_EXCEEDED", text, uid),
                    WSCloseCode.TRY_AGAIN_LATER,
                    "too many connections",
                )
                raise Closed
            self.hub.join(self, session.account_id, session.user_id)
        elif (current.account_id, current.user_id) != (session.account_id, session.user_id):
            # Subscriptions were checked for one caller; another one starts a new connection.
            self.close(
                error("auth", "AUTH_FAILED", "A new token must be for the same user.", uid),
                WSCloseCode.POLICY_VIOLATION,
                "auth failed",
            )
            raise Closed
        self.session = session
        self.expired_at = None
        self.authed.set()
        self.wake.set()
        self.send(with_uid({"type": "auth", "status": "ok"}, uid))

    def _subscribe(self, message: dict[str, Any], uid: str | None) -> None:
        assert self.session is not None
        if self.expired_at is not None:
            self.send(error("subscribe", "TOKEN_EXPIRED", "Send a fresh token first.", uid))
            return
        if message.get("collection") != COLLECTION:
            text = f'Only "{COLLECTION}" can be subscribed to here.'
            self.send(error("subscribe", "INVALID_COLLECTION", text, uid))
            return
        event = message.get("event")
        if event is not None and event not in EVENTS:
            text = 'event must be "create", "update" or "delete".'
            self.send(error("subscribe", "INVALID_PAYLOAD", text, uid))
            return
        key = subscription_key(uid)
        if key not in self.subscriptions and len(self.subscriptions) >= (
            self.limits.max_subscriptions
        ):
            text = f"At most {self.limits.max_subscriptions} subscriptions per connection."
            self.send(error("subscribe", "LIMIT_EXCEEDED", text, uid))
            return
        try:
            query = parse_query_message(message.get("query"), self.session)
        except ApiError as exc:
            self.send(error("subscribe", exc.code, exc.message, uid))
            return
        sub = Subscription(key, uid, query, event, share_text(message.get("query")))
        self.subscriptions[key] = sub
        try:
            self.jobs.put_nowait(("init", sub))
        except asyncio.QueueFull:
            self.fail_behind()

    def _unsubscribe(self, uid: str | None) -> None:
        if uid is None:
            self.subscriptions.clear()
        else:
            self.subscriptions.pop(subscription_key(uid), None)
        self.send(with_uid({"type": "subscription", "event": "unsubscribe"}, uid))
