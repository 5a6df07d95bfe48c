"""The SQL of a ledger list read: the page of rows and its counts, shaped for the indexes.

A non-admin sees rows they received or sent. Written as one `recipient = me OR sender = me`
condition, no single index delivers those rows in sort order, so SQLite sorted every visible
row in a temporary B-tree on each page. Here the rule is two disjoint arms,

* `recipient = me` and
* `sender = me AND recipient <> me` (recipient and sender are NOT NULL, so the arms never
  overlap and together are exactly the OR),

each read in sort order from its own index, merged (`UNION ALL ... ORDER BY`: SQLite's MERGE,
PostgreSQL's Merge Append) and cut by LIMIT/OFFSET; a count is the sum of the two arms' counts,
and a recipient arm's count reads only the index. Admins read their account in one statement,
unless their filter keeps one user's received or sent rows (the widget's latest list): then
that user's two arms, as a member's own (notifications/filter_owner.py).
The same filter and search apply to both arms, so the rows, their order and the counts are the
ones the single OR statement gives.

Indexes (storage/tables.py), each ending in the `id` tie-breaker: (account_id, recipient,
status, timestamp, id) for the inbox bell; (account_id, recipient|sender, timestamp, id) for
lists by time; (account_id, recipient|sender, id) for lists by id (Directus' default sort);
(account_id, timestamp, id) for an admin's whole account by time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import CompoundSelect, Select, func, select, union_all
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.sql.elements import ColumnElement

from server.notifications.model import Visibility
from server.notifications.query import Query, sort_keys
from server.notifications.serialize import (
    API_FIELDS,
    DATETIME_FIELDS,
    iso_datetime,
    rows_to_api,
)
from server.storage.compiled_reads import (
    CompiledRead,
    Override,
    Processor,
    compiled_reads_apply,
    runs_again,
)
from server.storage.notifications import visibility
from server.storage.tables import notifications
from server.tokens import Session

_T = notifications.c
T = TypeVar("T")
API_COLUMNS = [_T[name] for name in API_FIELDS]


def scope(
    session: Session, query: Query | None
) -> tuple[tuple[ColumnElement[bool], ...], list[ColumnElement[bool]]]:
    """(Disjoint conditions whose union is what `session` may read, the query's conditions
    to AND with each). The rule and its SQL are server/storage/notifications/visibility.py's.
    A filter that keeps one user's received or sent rows (`query.owner`) read by an admin, or
    by that user, is that user's arms with the rest of the filter: the arms are exactly the
    condition taken out, each in index order."""
    visible = visibility.visible(session)
    if query is None:
        return visibility.visible_arms(visible), []
    if query.owner is not None and visible.user_id in (None, query.owner):
        owner = Visibility(session.account_id, query.owner)
        return visibility.visible_arms(owner), query.conditions(beside_owner=True)
    return visibility.visible_arms(visible), query.conditions()


def memo(
    kind: str, session: Session, query: Query | None, build: Callable[[], T], dialect: str = ""
) -> T:
    """`build()` once per (kind, scope, dialect) for a `query` that is reused; the SQL of a
    query depends only on these and the query, never on data."""
    if query is None:
        return build()
    key = (kind, session.account_id, session.user_id, session.is_admin, dialect)
    stmt: T | None = query.statements.get(key)
    if stmt is None:
        stmt = query.statements[key] = build()
    return stmt


def page_statement(
    session: Session, query: Query, dialect: str
) -> Select[Any] | CompoundSelect[Any]:
    """The visible rows matching `query`, in its order and window (every API column), for the
    `dialect` (`conn.dialect.name`) it will run on."""

    def build() -> Select[Any] | CompoundSelect[Any]:
        return _page_statement(session, query, per_arm=dialect == "postgresql")

    return memo("page", session, query, build, dialect)


def count_statement(session: Session, query: Query | None) -> Select[Any]:
    """How many visible rows match `query` (None: every visible row, for total_count)."""
    return memo("count", session, query, lambda: _count_statement(session, query))


# -- running them ---------------------------------------------------------------------------
# A query read again and again (the REST route's parse cache, a live subscription) runs its
# statements as `CompiledRead`s on SQLite (storage/compiled_reads.py), taken from its second
# read by SQLAlchemy; a query read once (a `$NOW` filter, a SEARCH body) costs nothing more.
_READ_ONCE, _NEVER = object(), object()


def execute(
    kind: str,
    session: Session,
    query: Query | None,
    conn: Connection,
    statement: Callable[[], Any],
    overrides: Mapping[str, Override] | None = None,
) -> CompiledRead | CursorResult[Any]:
    """Run `statement()` for `query`: SQLAlchemy's result, or once known its `CompiledRead`
    (not yet run: its caller runs it at the cursor)."""
    if query is None or not compiled_reads_apply(conn):
        return conn.execute(statement())
    key = (kind, session.account_id, session.user_id, session.is_admin, "compiled")
    found = query.statements.get(key)
    if isinstance(found, CompiledRead):
        return found
    result = conn.execute(statement())
    if found is None:
        query.statements[key] = _READ_ONCE
    elif found is _READ_ONCE:
        # Read again: from now on at the cursor (or, if it can't be repeated so, never).
        query.statements[key] = CompiledRead(result, overrides) if runs_again(result) else _NEVER
    return result


def _api_datetime(own: Processor) -> Callable[[Any], Any]:
    """A timestamp column straight to the API's ISO string. SQLite keeps UtcDateTime values as
    UTC text `YYYY-MM-DD HH:MM:SS.ffffff`, which is `iso_datetime`'s answer with a `T` and a
    `Z`; any other text goes through the column's own processor and `iso_datetime`."""

    def process(value: Any) -> Any:
        if value is None:
            return None
        if type(value) is str and len(value) == 26 and value[10] == " " and value[19] == ".":
            return f"{value[:10]}T{value[11:]}Z"
        return iso_datetime(own(value) if own is not None else value)

    return process


_API_OVERRIDES: dict[str, Override] = {name: _api_datetime for name in DATETIME_FIELDS}


def page_objects(conn: Connection, session: Session, query: Query) -> list[dict[str, Any]]:
    """The page of `query` as API objects (every field; the caller projects `fields`)."""
    dialect = conn.dialect.name
    read = execute(
        "page",
        session,
        query,
        conn,
        lambda: page_statement(session, query, dialect),
        _API_OVERRIDES,
    )
    if not isinstance(read, CompiledRead):
        return rows_to_api(read.all())
    # Every API column, in order, values already in their JSON form (`rows_to_api`'s
    # objects): only a NULL `attempt_errors` is left to become `[]`.
    items = read.rows(conn)
    for item in items:
        if item["attempt_errors"] is None:
            item["attempt_errors"] = []
    return items


def count(conn: Connection, session: Session, query: Query, *, total: bool = False) -> int:
    """How many visible rows match `query` (`total`: every visible row, its filter ignored)."""
    scope = None if total else query
    kind = "total" if total else "count"
    read = execute(kind, session, query, conn, lambda: count_statement(session, scope))
    return int(read.scalar(conn) if isinstance(read, CompiledRead) else read.scalar_one())


def _page_statement(
    session: Session, query: Query, *, per_arm: bool
) -> Select[Any] | CompoundSelect[Any]:
    limit, offset = query.read_window()
    visible_arms, conditions = scope(session, query)
    arms = [select(*API_COLUMNS).where(arm, *conditions) for arm in visible_arms]
    keys = sort_keys(query)
    table_order = [_T[name].desc() if desc else _T[name].asc() for name, desc in keys]
    if len(arms) == 1:
        return arms[0].order_by(*table_order).limit(limit).offset(offset)
    if per_arm:
        # PostgreSQL: each arm ordered and cut to the window's end, `(SELECT ... ORDER BY ...
        # LIMIT offset+limit) UNION ALL (...)`. Without it the planner appended every matching
        # row of both arms (a bitmap scan, ~3,000 rows at 100,000) and top-N sorted them; with
        # it each arm is an index scan that stops after offset+limit rows, under a Merge
        # Append. (SQLite can't order an arm of a compound, and merges the arms in index
        # order without it.)
        arms = [arm.order_by(*table_order).limit(limit + offset) for arm in arms]
    merged = union_all(*arms)
    # The compound's ORDER BY names its result columns (every sort field is an API column).
    columns = merged.selected_columns
    terms = [columns[name].desc() if desc else columns[name].asc() for name, desc in keys]
    return merged.order_by(*terms).limit(limit).offset(offset)


def _count_statement(session: Session, query: Query | None) -> Select[Any]:
    visible_arms, conditions = scope(session, query)
    counts = [
        select(func.count()).select_from(notifications).where(arm, *conditions)
        for arm in visible_arms
    ]
    if len(counts) == 1:
        return counts[0]
    return select(counts[0].scalar_subquery() + counts[1].scalar_subquery())
