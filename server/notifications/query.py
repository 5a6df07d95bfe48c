"""Directus' global query parameters, turned into SQLAlchemy Core expressions.

Filters and `search` are compiled in `server.notifications.filters`; this module reads the
other parameters (fields, sort, paging, meta, aggregates). Anything malformed is a 400
`INVALID_QUERY` that says what to fix; this module never touches the database.

Access scoping is not done here: the ledger service ANDs it into every statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.sql.elements import ColumnElement, UnaryExpression

from server import jsonlimits
from server.errors import invalid_query
from server.notifications.fields import FIELD_KINDS, MAX_SAFE_INTEGER, known_field
from server.notifications.filter_owner import split_owner
from server.notifications.filters import Context, compile_filter
from server.notifications.search import compile_search
from server.storage.tables import notifications

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

# Fields that can be sorted, grouped and aggregated on (JSON has no ordering or equality).
ORDERABLE = frozenset(name for name, kind in FIELD_KINDS.items() if kind != "json")
UNSUPPORTED_KEYS = frozenset({"deep", "alias", "export", "version", "backlink"})
META_KEYS = ("total_count", "filter_count")
AGGREGATE_FUNCTIONS = ("count", "countDistinct", "countAll", "min", "max")


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One aggregate: `function` over `field` (`*` for a plain row count)."""

    function: str
    field: str

    @property
    def label(self) -> str:
        return f"{self.function}__{'all' if self.field == '*' else self.field}"


@dataclass(frozen=True, slots=True)
class Query:
    """A validated query. `where` is the request's filter, `search` its search, both unscoped."""

    fields: tuple[str, ...] | None = None
    where: ColumnElement[bool] | None = None
    # The one user whose received or sent rows `where` keeps, if its shape says so, and
    # `where` without that condition: a list read may run as that user's two arms with
    # `beside_owner` instead of `where` (notifications/filter_owner.py, reads.py).
    owner: str | None = None
    beside_owner: ColumnElement[bool] | None = None
    search: ColumnElement[bool] | None = None
    sort: tuple[tuple[str, bool], ...] = ()
    limit: int | None = None
    offset: int = 0
    page: int | None = None
    meta: frozenset[str] = frozenset()
    aggregates: tuple[Aggregate, ...] = ()
    group_by: tuple[str, ...] = ()
    # SQL built from this query, by caller scope (notifications/reads.py): a Query reused from
    # the REST route's parse cache is not rebuilt, and SQLAlchemy's cache key, memoised on the
    # statement object, is not recomputed either.
    statements: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_aggregate(self) -> bool:
        return bool(self.aggregates or self.group_by)

    def read_window(self) -> tuple[int, int]:
        """(limit, offset) for a read: default 100, `-1` = the maximum, `page` wins over offset
        (`page` 0 reads like page 1; with `limit=-1` there are no pages)."""
        if self.limit == -1:
            return MAX_LIMIT, self.offset
        limit = DEFAULT_LIMIT if self.limit is None else self.limit
        if self.page is not None:
            return limit, min(limit * (max(self.page, 1) - 1), MAX_SAFE_INTEGER)
        return limit, self.offset

    def write_window(self) -> tuple[int | None, int]:
        """(limit or None for all, offset) for a write by query: no implicit limit.

        Directus applied its default limit of 100 to `{query}` writes, so "archive all" quietly
        archived only 100 rows (directus#22265); here a write reaches every match unless the
        caller asked for a limit.
        """
        if self.limit is None or self.limit == -1:
            return None, self.offset
        if self.page is not None:
            return self.limit, min(self.limit * (max(self.page, 1) - 1), MAX_SAFE_INTEGER)
        return self.limit, self.offset

    def conditions(self, *, beside_owner: bool = False) -> list[ColumnElement[bool]]:
        """The request's own conditions (filter and search), to be ANDed with the scope;
        `beside_owner`: without the owner's condition, for a read scoped to the owner."""
        where = self.beside_owner if beside_owner else self.where
        return [c for c in (where, self.search) if c is not None]


# ---------------------------------------------------------------- URL parameters


_URL_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_BRACKET = re.compile(r"\[([^\[\]]*)\]")


def parse_url_query(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """URL parameters (with `qs` bracket notation) as the nested structure Directus reads.

    `filter[status][_eq]=inbox` -> `{"filter": {"status": {"_eq": "inbox"}}}`,
    `fields[]=id&fields[]=subject` -> `{"fields": ["id", "subject"]}`, numeric keys
    (`filter[_and][0][...]`) become arrays, and a repeated plain key becomes an array.
    """
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _URL_KEY.match(key)
        if match is None:
            raise invalid_query(f'Malformed query parameter "{key}"')
        path = [match.group(1), *_BRACKET.findall(match.group(2))]
        _insert(root, path, value, key)
    return {name: _listify(value) for name, value in root.items()}


def _insert(root: dict[str, Any], path: list[str], value: str, key: str) -> None:
    node = root
    for depth, segment in enumerate(path):
        last = depth == len(path) - 1
        if segment == "":
            if depth == 0:
                raise invalid_query(f'Malformed query parameter "{key}"')
            segment = str(len(node))
        if last:
            existing = node.get(segment)
            if existing is None:
                node[segment] = value
            elif isinstance(existing, str):
                node[segment] = [existing, value]
            elif isinstance(existing, list):
                existing.append(value)
            else:
                raise invalid_query(f'Query parameter "{key}" conflicts with another parameter')
            return
        child = node.setdefault(segment, {})
        if not isinstance(child, dict):
            raise invalid_query(f'Query parameter "{key}" conflicts with another parameter')
        node = child


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {k: _listify(v) for k, v in node.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return node


# ---------------------------------------------------------------- the whole query


def parse_query(params: Mapping[str, Any], ctx: Context) -> Query:
    """Validate Directus query parameters (URL-decoded or a SEARCH body's `query`)."""
    for key in params:
        if key in UNSUPPORTED_KEYS:
            raise invalid_query(f'"{key}" is not supported by this API')
    fields = _parse_fields(params["fields"]) if "fields" in params else None
    where, owner, beside_owner = (
        _parse_filter(params["filter"], ctx) if "filter" in params else (None, None, None)
    )
    search = _parse_search(params.get("search"))
    limit = _parse_int(params["limit"], "limit", minimum=-1) if "limit" in params else None
    if limit is not None and limit > MAX_LIMIT:
        raise invalid_query(f"limit can't be greater than {MAX_LIMIT}; use offset or page")
    offset = _parse_int(params["offset"], "offset", minimum=0) if "offset" in params else 0
    page = _parse_int(params["page"], "page", minimum=0) if "page" in params else None
    meta = _parse_meta(params["meta"]) if "meta" in params else frozenset()
    aggregates = _parse_aggregate(params["aggregate"]) if "aggregate" in params else ()
    group_by = _parse_group_by(params["groupBy"]) if "groupBy" in params else ()
    sort = _parse_sort(params["sort"]) if "sort" in params else ()
    if group_by:
        for name, _desc in sort:
            if name not in group_by:
                raise invalid_query(f'Sort grouped results on a groupBy field, not "{name}"')
    return Query(
        fields=fields,
        where=where,
        owner=owner,
        beside_owner=beside_owner,
        search=search,
        sort=sort,
        limit=limit,
        offset=offset,
        page=page,
        meta=meta,
        aggregates=aggregates,
        group_by=group_by,
    )


def _csv_list(value: Any, name: str) -> list[str]:
    """A CSV string or an array of (CSV) strings, trimmed, blanks dropped."""
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = value
    else:
        raise invalid_query(f"{name} must be a string or an array of strings")
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


_ALL_FIELDS = re.compile(r"^\*(\.\*)*$")


def _parse_fields(value: Any) -> tuple[str, ...] | None:
    names = _csv_list(value, "fields")
    if not names or any(_ALL_FIELDS.match(n) for n in names):
        return None
    return tuple(dict.fromkeys(known_field(n, "Field") for n in names))


def _parse_search(value: Any) -> ColumnElement[bool] | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_query("search must be a string")
    if value == "":
        return None
    return compile_search(value)


def _parse_int(value: Any, name: str, *, minimum: int) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,16}", value.strip()):
        number = int(value.strip())
    if number is None or number < minimum or number > MAX_SAFE_INTEGER:
        raise invalid_query(f"{name} must be an integer of at least {minimum}")
    return number


def _parse_meta(value: Any) -> frozenset[str]:
    names = _csv_list(value, "meta")
    found: set[str] = set()
    for name in names:
        if name == "*":
            found.update(META_KEYS)
        elif name in META_KEYS:
            found.add(name)
        else:
            raise invalid_query(f'meta "{name}" is unknown; use total_count, filter_count or *')
    return frozenset(found)


def _parse_sort(value: Any) -> tuple[tuple[str, bool], ...]:
    out: list[tuple[str, bool]] = []
    for entry in _csv_list(value, "sort"):
        descending = entry.startswith("-")
        name = entry[1:] if descending else entry
        if name == "?":
            raise invalid_query("Random sort (?) is not supported")
        known_field(name, "Sort field")
        if name not in ORDERABLE:
            raise invalid_query(f'Can\'t sort on "{name}"')
        out.append((name, descending))
    return tuple(out)


def _parse_group_by(value: Any) -> tuple[str, ...]:
    names: list[str] = []
    for name in _csv_list(value, "groupBy"):
        known_field(name, "groupBy field")
        if name not in ORDERABLE:
            raise invalid_query(f'Can\'t group by "{name}"')
        names.append(name)
    return tuple(dict.fromkeys(names))


def _parse_aggregate(value: Any) -> tuple[Aggregate, ...]:
    if isinstance(value, str):
        try:
            value = jsonlimits.loads(value)
        except jsonlimits.JsonTooDeep as error:
            raise invalid_query(f"The aggregate object's {error}") from None
        except ValueError:
            raise invalid_query("Invalid JSON for aggregate object") from None
    if not isinstance(value, dict) or not value:
        raise invalid_query('aggregate must be an object such as {"count": "*"}')
    out: list[Aggregate] = []
    for function, raw_fields in value.items():
        if function not in AGGREGATE_FUNCTIONS:
            raise invalid_query(
                f'Aggregate function "{function}" is unknown; use {", ".join(AGGREGATE_FUNCTIONS)}'
            )
        names = ["*"] if function == "countAll" else _csv_list(raw_fields, f"aggregate[{function}]")
        if not names:
            raise invalid_query(f"aggregate[{function}] needs at least one field")
        if "*" in names and (function != "countAll" and (function != "count" or len(names) > 1)):
            raise invalid_query(f'aggregate[{function}] accepts "*" only alone, and only for count')
        for name in names:
            if name != "*":
                known_field(name, "Aggregate field")
                if function != "count" and name not in ORDERABLE:
                    raise invalid_query(f'Can\'t compute {function} of "{name}"')
            out.append(Aggregate(function, name))
    return tuple(dict.fromkeys(out))


# ---------------------------------------------------------------- filter


def _parse_filter(
    value: Any, ctx: Context
) -> tuple[ColumnElement[bool] | None, str | None, ColumnElement[bool] | None]:
    """The filter's condition; its owner and the condition beside the owner's, if it has one
    (notifications/filter_owner.py)."""
    if isinstance(value, str):
        try:
            value = jsonlimits.loads(value)
        except jsonlimits.JsonTooDeep as error:
            raise invalid_query(f"The filter object's {error}") from None
        except ValueError:
            raise invalid_query("Invalid JSON for filter object") from None
    if value is None:
        return None, None, None
    where = compile_filter(value, ctx)
    split = split_owner(value, ctx)
    if split is None:
        return where, None, None
    owner, rest = split
    return where, owner, compile_filter(rest, ctx)


# ---------------------------------------------------------------- ordering


def sort_keys(query: Query) -> tuple[tuple[str, bool], ...]:
    """(field, descending) of a row read: the asked sort (default `id`), then `id` so pages
    are stable.

    The `id` tie-breaker runs in the direction of the last sort field (`-timestamp` lists equal
    timestamps highest id first). Directus adds no tie-breaker at all, so this orders only what
    Directus leaves unspecified; in this direction an index on (..., timestamp) read backwards
    delivers the whole ORDER BY (SQLite keeps the rowid at the end of every index), where `id`
    ascending after `timestamp DESC` needed a temporary sort of every matching row.
    """
    keys = query.sort or (("id", False),)
    if all(name != "id" for name, _ in keys):
        keys = (*keys, ("id", keys[-1][1]))
    return keys


def order_by(query: Query) -> list[UnaryExpression[Any]]:
    """The ORDER BY of a row read over the notifications table (see `sort_keys`)."""
    return [
        notifications.c[name].desc() if descending else notifications.c[name].asc()
        for name, descending in sort_keys(query)
    ]


def group_order_by(query: Query) -> list[UnaryExpression[Any]]:
    """Grouped results: the asked sort (on group fields), else the first group field."""
    if query.sort:
        return [notifications.c[n].desc() if d else notifications.c[n].asc() for n, d in query.sort]
    return [notifications.c[name].asc() for name in query.group_by]
