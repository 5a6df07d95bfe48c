"""Who is listening on this instance: connections by account, and connections per user;
and every open socket, authenticated or not, so shutdown can close them all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from server.notifications.changes import RowChange


class Listener(Protocol):
    def offer(self, change: RowChange) -> None: ...


class Hub:
    """Hands each change to the connections of its account (never blocks: see `offer`)."""

    def __init__(self) -> None:
        self._by_account: dict[str, set[Listener]] = {}
        self._per_user: dict[tuple[str, str], int] = {}
        # The "go away" (close it with 1001) of each open socket; set by the route.
        self._open: set[Callable[[], None]] = set()
        self._going_away = False

    def opened(self, go_away: Callable[[], None]) -> None:
        """A socket was upgraded; `go_away` closes it. Called during shutdown (an upgrade
        accepted just before the listener closed), it closes the socket at once."""
        self._open.add(go_away)
        if self._going_away:
            go_away()

    def ended(self, go_away: Callable[[], None]) -> None:
        self._open.discard(go_away)

    def go_away(self) -> None:
        """Shutdown: close every open socket (aiohttp waits for their handlers to end)."""
        self._going_away = True
        for close in list(self._open):
            close()

    def deliver(self, change: RowChange) -> None:
        if change.account_id is None:
            return
        for listener in list(self._by_account.get(change.account_id, ())):
            listener.offer(change)

    def connections(self, account_id: str, user_id: str) -> int:
        return self._per_user.get((account_id, user_id), 0)

    def join(self, listener: Listener, account_id: str, user_id: str) -> None:
        self._by_account.setdefault(account_id, set()).add(listener)
        key = (account_id, user_id)
        self._per_user[key] = self._per_user.get(key, 0) + 1

    def leave(self, listener: Listener, account_id: str, user_id: str) -> None:
        listeners = self._by_account.get(account_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._by_account[account_id]
        key = (account_id, user_id)
        left = self._per_user.get(key, 0) - 1
        if left > 0:
            self._per_user[key] = left
        else:
            self._per_user.pop(key, None)

    def has_listeners(self) -> bool:
        return bool(self._by_account)

    @property
    def listeners(self) -> int:
        return sum(len(s) for s in self._by_account.values())
