"""One read of a change's rows for all the subscriptions that would make the same read.

Each subscription hears of a `create` or `update` by re-reading the changed rows with its own
query under its caller's access rules (contract §13; `Ledger.read_many`). Subscriptions with
the same query text, held by the same user, make exactly the same read of the same change (a
user with the board view open in ten tabs, each tab subscribed the same way), and each of them
read it (1,000 reads a send in `bench realtime`). Here the first worker to need a read starts
it and the others with the same key await its result:

- the key is the change itself (by identity: a later change of the same rows is read again),
  the chunk of its ids, the caller's account, user and admin flag, and the subscription's
  query as the client sent it (`share_text`);
- a query that depends on the time it was parsed (`$NOW`) is never shared;
- a worker that is cancelled (its connection closed) does not cancel the read the others
  await;
- the rows are shared as read: nobody changes them (they are serialized as they are).

Finished reads are kept for the workers still behind, within `MAX_READS` reads and
`MAX_ROWS` rows, the oldest dropped first; a worker that comes after its read was dropped
reads again, as every worker did before.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from server.notifications.changes import RowChange
from server.tokens import Session

Rows = list[dict[str, Any]]
MAX_READS = 1024
MAX_ROWS = 20_000


def share_text(raw_query: Any) -> str | None:
    """A subscription's query as a key (None: not to be shared)."""
    text = json.dumps(raw_query, sort_keys=True, separators=(",", ":"), default=str)
    return None if "$NOW" in text else text


@dataclass(slots=True)
class _Read:
    change: RowChange  # held, so its id() is not reused while the read is kept
    rows: asyncio.Future[Rows]
    size: int = 0


class SharedReads:
    def __init__(self, *, max_reads: int = MAX_READS, max_rows: int = MAX_ROWS) -> None:
        self.max_reads = max_reads
        self.max_rows = max_rows
        self._reads: OrderedDict[tuple[Any, ...], _Read] = OrderedDict()
        self._rows = 0
        self.started = 0  # reads started (tests count them)

    async def rows(
        self,
        change: RowChange,
        chunk: int,
        session: Session,
        share: str | None,
        read: Callable[[], Awaitable[Rows]],
    ) -> Rows:
        """The rows of `read()`, read once for every caller with the same key."""
        if share is None:
            self.started += 1
            return await read()
        key = (id(change), chunk, session.account_id, session.user_id, session.is_admin, share)
        found = self._reads.get(key)
        if found is None or found.change is not change:
            found = _Read(change, asyncio.ensure_future(read()))
            self.started += 1
            self._reads[key] = found
            found.rows.add_done_callback(lambda _: self._kept(key, found))
            self._drop_old()
        return await asyncio.shield(found.rows)

    def _kept(self, key: tuple[Any, ...], read: _Read) -> None:
        failed = read.rows.cancelled() or read.rows.exception() is not None
        if failed or self._reads.get(key) is not read:
            return  # a failed read is not counted; a dropped one no longer is
        read.size = len(read.rows.result())
        self._rows += read.size
        self._drop_old()

    def _drop_old(self) -> None:
        while self._reads and (len(self._reads) > self.max_reads or self._rows > self.max_rows):
            _, oldest = self._reads.popitem(last=False)
            self._rows -= oldest.size
