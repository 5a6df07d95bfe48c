"""The ledger's read, update and delete service: one query path for REST and GraphQL.

Access rules (contract §7, Directus' app-access permissions adapted to monday):

* every statement is scoped to the caller's account, ANDed in after the request's filter,
  so no filter can widen it;
* a non-admin sees only rows they received or sent;
* only `status` can change, and only to `inbox` or `archived`;
* only the sender or an admin can delete;
* a row that is missing or not visible is 403 FORBIDDEN, never 404;
* batch writes run in one transaction and are all-or-nothing: the write itself is scoped,
  and when it reached fewer rows than were asked for, the transaction is rolled back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Integer, Select, and_, cast, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from server.errors import ApiError, forbidden, invalid_payload
from server.notifications import reads
from server.notifications.fields import FIELD_KINDS
from server.notifications.ledger_input import (
    MAX_KEYS,
    parse_key,
    validate_changes,
)
from server.notifications.ledger_input import (
    split_schedule as _split,
)
from server.notifications.ledger_input import (
    status_of as _status,
)
from server.notifications.model import (
    LEDGER_STATUSES,
    DeliveryStatus,
    LedgerStatus,
    Notification,
)
from server.notifications.ports import NotificationStore, ScheduleChanges
from server.notifications.query import Aggregate, Query, group_order_by, order_by
from server.notifications.schedule_events import (
    RESCHEDULED,
    cancelled_counts,
    scheduled_counts,
)
from server.notifications.serialize import (
    API_FIELDS,
    api_value,
    notification_to_api,
    project,
)
from server.storage.compiled_reads import CompiledRead
from server.storage.db import read_once
from server.storage.notifications.visibility import deletable, visibility_condition, visible
from server.storage.read_budget import ReadTooExpensive
from server.storage.tables import notifications
from server.tokens import Session

STATUSES = LEDGER_STATUSES

_API_COLUMNS = [notifications.c[name] for name in API_FIELDS]
_T = notifications.c
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page:
    """A list read: API objects (or aggregate rows) and the `meta` asked for, if any."""

    data: list[dict[str, Any]]
    meta: dict[str, int] | None


# ---------------------------------------------------------------- scope


def visible_scope(session: Session) -> ColumnElement[bool]:
    return visibility_condition(visible(session))


def _where(session: Session, query: Query | None) -> ColumnElement[bool]:
    conditions = [visible_scope(session), *(query.conditions() if query else [])]
    return and_(*conditions)


# ---------------------------------------------------------------- keys and data


# ---------------------------------------------------------------- reads


async def _read(engine: AsyncEngine, fn: Callable[[Connection], T]) -> T:
    """A ledger read, bounded in time (storage/read_budget.py): past it, 400."""
    with _bounded():
        return await read_once(engine, fn)


@contextlib.contextmanager
def _bounded() -> Iterator[None]:
    """`ReadTooExpensive` (a read stopped at its deadline) as the 400 a caller sees."""
    try:
        yield
    except ReadTooExpensive as stopped:
        raise ApiError(
            400,
            "QUERY_TOO_EXPENSIVE",
            f"This query needs more than {stopped.per_read or 0:g} s of database time (or this "
            "request's reads more than twice that together): use fewer or narrower filter "
            "rules (text rules scan every row they reach), a smaller page, or fewer aliases.",
        ) from None


def _row_select(session: Session, query: Query | None) -> Select[Any]:
    return select(*_API_COLUMNS).where(_where(session, query))


async def read_by_query(engine: AsyncEngine, session: Session, query: Query) -> Page:
    """`GET /notifications`: rows (or aggregates) the caller can see, with `meta` if asked.

    The page and its counts are one synchronous read (`read_once`): on SQLite one call into
    a reader thread for all the statements, in one snapshot."""
    return await _read(engine, lambda conn: _read_page(conn, session, query))


def _read_page(conn: Connection, session: Session, query: Query) -> Page:
    if query.is_aggregate:
        data = _aggregate(conn, session, query)
    else:
        data = reads.page_objects(conn, session, query)
        if query.fields is not None:
            data = [project(item, query.fields) for item in data]
    meta = _meta(conn, session, query) if query.meta else None
    return Page(data=data, meta=meta)


async def read_many(
    engine: AsyncEngine, session: Session, keys: Sequence[int], query: Query
) -> list[dict[str, Any]]:
    """`SEARCH /notifications {"keys"}`: the visible ones among `keys` (others are left out)."""
    if not keys:
        return []
    stmt = _row_select(session, query).where(_T.id.in_(list(keys))).order_by(*order_by(query))
    rows = await _read(engine, lambda conn: conn.execute(stmt).mappings().all())
    return [project(notification_to_api(dict(r)), query.fields) for r in rows]


async def read_one(
    engine: AsyncEngine, session: Session, key: int | None, fields: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """One visible row; 403 when it is missing or not the caller's to see."""
    if key is None:
        raise forbidden()
    stmt = _row_select(session, None).where(_T.id == key)
    row = await _read(engine, lambda conn: conn.execute(stmt).mappings().first())
    if row is None:
        raise forbidden()
    return project(notification_to_api(dict(row)), fields)


def _meta(conn: Connection, session: Session, query: Query) -> dict[str, int]:
    meta: dict[str, int] = {}
    if "total_count" in query.meta:
        # total_count ignores the request's filter but never the caller's scope.
        meta["total_count"] = reads.count(conn, session, query, total=True)
    if "filter_count" in query.meta:
        meta["filter_count"] = reads.count(conn, session, query)
    return meta


def _aggregate_column(agg: Aggregate) -> Any:
    if agg.field == "*":
        return func.count().label(agg.label)
    col: Any = notifications.c[agg.field]
    if FIELD_KINDS[agg.field] == "bool" and agg.function in ("min", "max"):
        col = cast(col, Integer)  # PostgreSQL has no min/max of boolean
    if agg.function == "count":
        return func.count(col).label(agg.label)
    if agg.function == "countDistinct":
        return func.count(col.distinct()).label(agg.label)
    if agg.function == "min":
        return func.min(col).label(agg.label)
    return func.max(col).label(agg.label)


def aggregate_statement(session: Session, query: Query) -> Select[Any]:
    """The SQL of an aggregate read (built once per reused query, like the page's)."""

    def build() -> Select[Any]:
        group_cols = [notifications.c[name] for name in query.group_by]
        agg_cols = [_aggregate_column(a) for a in query.aggregates]
        where = _where(session, query)
        stmt = select(*group_cols, *agg_cols).select_from(notifications).where(where)
        if group_cols:
            limit, offset = query.read_window()
            stmt = stmt.group_by(*group_cols).order_by(*group_order_by(query))
            stmt = stmt.limit(limit).offset(offset)
        return stmt

    return reads.memo("aggregate", session, query, build)


def _aggregate(conn: Connection, session: Session, query: Query) -> list[dict[str, Any]]:
    """Aggregate rows in Directus' REST shape: group fields, then `{"count": N}` for `*`
    or `{"count": {"field": N}}` per field."""
    read = reads.execute(
        "aggregate", session, query, conn, lambda: aggregate_statement(session, query)
    )
    rows: Sequence[Mapping[Any, Any]] = (
        read.rows(conn) if isinstance(read, CompiledRead) else read.mappings().all()
    )
    out: list[dict[str, Any]] = []
    for row in rows:
        item: dict[str, Any] = {name: api_value(row[name]) for name in query.group_by}
        for agg in query.aggregates:
            value = api_value(row[agg.label])
            if agg.function in ("count", "countDistinct", "countAll") and value is not None:
                value = int(value)
            elif agg.field != "*" and FIELD_KINDS[agg.field] == "bool" and value is not None:
                value = bool(value)  # min/max of a boolean, taken over it as an integer
            if agg.field == "*":
                item[agg.function] = value
            else:
                item.setdefault(agg.function, {})[agg.field] = value
        out.append(item)
    return out


# ---------------------------------------------------------------- the service


def _objects(rows: Iterable[Notification]) -> list[dict[str, Any]]:
    return sorted((notification_to_api(row) for row in rows), key=lambda item: int(item["id"]))


@dataclass
class Ledger:
    """The ledger API's service: reads (SQL here, shared by REST and GraphQL) and writes
    (through the `NotificationStore`), each under the caller's access rules."""

    engine: AsyncEngine
    store: NotificationStore
    schedule: ScheduleChanges | None = None

    async def _reschedule(
        self, session: Session, changes: Sequence[tuple[Sequence[int], Mapping[str, Any]]]
    ) -> list[Notification]:
        """Contract §12: the sender's or an admin's rows, all still `scheduled`, or 403."""
        if self.schedule is None:
            raise forbidden()
        planned: list[tuple[Sequence[int], dict[str, Any]]] = []
        for keys, values in changes:
            columns = _split(values)
            if "status" in values:
                columns["status"] = values["status"]
            planned.append((keys, columns))
        rows = await self.schedule.change_schedule(deletable(session), planned)
        if rows is None:
            raise forbidden()
        scheduled_counts[RESCHEDULED] += sum(
            r.delivery_status == DeliveryStatus.SCHEDULED for r in rows
        )
        cancelled_counts[()] += sum(r.delivery_status == DeliveryStatus.CANCELLED for r in rows)
        return rows

    async def read_by_query(self, session: Session, query: Query) -> Page:
        return await read_by_query(self.engine, session, query)

    async def read_many(
        self, session: Session, keys: Sequence[int], query: Query
    ) -> list[dict[str, Any]]:
        return await read_many(self.engine, session, keys, query)

    async def read_one(
        self, session: Session, key: int | None, fields: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        return await read_one(self.engine, session, key, fields)

    async def update_one(self, session: Session, key: int | None, data: Any) -> dict[str, Any]:
        """`PATCH /notifications/{id}`: the updated object; 403 when not visible."""
        changes = validate_changes(data, field="")
        if key is None:
            raise forbidden()
        if _split(changes):
            return notification_to_api((await self._reschedule(session, [([key], changes)]))[0])
        rows = await self.store.set_status_all(visible(session), [key], _status(changes))
        if rows is None:
            raise forbidden()
        return notification_to_api(rows[0])

    async def update_many(
        self, session: Session, keys: Sequence[int], data: Any
    ) -> list[dict[str, Any]]:
        """`PATCH /notifications {"keys", "data"}`: all of them or (403) none."""
        changes = validate_changes(data)
        if not keys:
            return []
        if _split(changes):
            return _objects(await self._reschedule(session, [(keys, changes)]))
        rows = await self.store.set_status_all(visible(session), keys, _status(changes))
        if rows is None:
            raise forbidden()  # some key is missing or not the caller's: nothing changed
        return _objects(rows)

    async def update_batch(self, session: Session, items: Any) -> list[dict[str, Any]]:
        """`PATCH /notifications [{"id", ...changes}]`: per-item changes in one transaction."""
        if not isinstance(items, list):
            raise invalid_payload("The body must be an array of objects with an id")
        if len(items) > MAX_KEYS:
            raise invalid_payload(f"A batch can hold at most {MAX_KEYS} items")
        planned: list[tuple[int, LedgerStatus | None]] = []
        validated: list[tuple[int, dict[str, Any]]] = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping) or "id" not in item:
                raise invalid_payload(
                    f'"[{index}]" must be an object with an "id"', field=f"[{index}]"
                )
            key = parse_key(item["id"], field=f"[{index}].id")
            rest = {k: v for k, v in item.items() if k != "id"}
            changes = validate_changes(rest, field=f"[{index}]")
            validated.append((key, changes))
            planned.append((key, _status(changes)))
        if any(_split(changes) for _key, changes in validated):
            # A batch that reschedules anything is a schedule change for every item in it.
            rescheduled = await self._reschedule(session, [([k], c) for k, c in validated])
            return _objects({row.id: row for row in rescheduled}.values())
        rows = await self.store.set_status(visible(session), planned)
        if rows is None:
            raise forbidden()
        # A key changed twice appears once, as it ended.
        return _objects({row.id: row for row in rows}.values())

    async def update_by_query(
        self, session: Session, query: Query, data: Any
    ) -> list[dict[str, Any]]:
        """`PATCH /notifications {"query", "data"}`: only ever the caller's visible rows."""
        with _bounded():
            return await self._update_by_query(session, query, data)

    async def _update_by_query(
        self, session: Session, query: Query, data: Any
    ) -> list[dict[str, Any]]:
        changes = validate_changes(data)
        if _split(changes):
            # The matching rows first (an unchanged status), then one all-or-nothing change.
            matching = await self.store.set_status_matching(visible(session), query, None)
            if not matching:
                return []
            keys = [row.id for row in matching]
            return _objects(await self._reschedule(session, [(keys, changes)]))
        rows = await self.store.set_status_matching(visible(session), query, _status(changes))
        return _objects(rows)

    async def delete_many(self, session: Session, keys: Sequence[int]) -> list[int]:
        """Delete `keys`: all of them, or (403) none when one is missing or not deletable."""
        if not keys:
            return []
        deleted = await self.store.delete(deletable(session), keys)
        if deleted is None:
            raise forbidden()
        return sorted(deleted)

    async def delete_one(self, session: Session, key: int | None) -> int:
        """`DELETE /notifications/{id}`: the sender or an admin; 403 otherwise."""
        if key is None:
            raise forbidden()
        await self.delete_many(session, [key])
        return key

    async def delete_by_query(self, session: Session, query: Query) -> list[int]:
        """Delete the visible rows matching `query`; 403 (and nothing deleted) when one of
        them is only the caller's to read, not to delete."""
        with _bounded():
            deleted = await self.store.delete_matching(visible(session), deletable(session), query)
        if deleted is None:
            raise forbidden()
        return sorted(deleted)
