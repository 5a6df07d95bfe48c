"""Directus' global query parameters, turned into SQLAlchemy Core expressions.

Every value reaches the database as a bound parameter of the column's own type (datetimes
are parsed to aware UTC datetimes first), so the same query compares correctly on SQLite
and PostgreSQL and nothing a caller writes is ever pasted into SQL. Anything malformed is a
400 `INVALID_QUERY` that says what to fix; this module never touches the database.

Access scoping is not done here: the ledger service ANDs it into every statement.
"""

from __future__ import annotations

import calendar
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Integer,
    String,
    Text,
    and_,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlalchemy.sql.functions import FunctionElement

from server.errors import invalid_query
from server.notifications.serialize import API_FIELDS
from server.storage.tables import notifications

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_SAFE_INTEGER = 2**53 - 1
# A filter tree deeper than this is not a real query; refusing it keeps recursion bounded.
MAX_FILTER_DEPTH = 16
MAX_FILTER_RULES = 500
MAX_LIST_VALUES = 10_000

Kind = Literal["int", "str", "datetime", "json"]

FIELD_KINDS: dict[str, Kind] = {
    "id": "int",
    "timestamp": "datetime",
    "status": "str",
    "recipient": "str",
    "sender": "str",
    "subject": "str",
    "message": "str",
    "collection": "str",
    "item": "str",
    "account_id": "str",
    "sent_as": "str",
    "transport": "str",
    "credential_owner": "str",
    "delivery_status": "str",
    "attempts": "int",
    "next_attempt_at": "datetime",
    "sent_at": "datetime",
    "last_error": "json",
    "idempotency_key": "str",
}
assert tuple(FIELD_KINDS) == API_FIELDS  # one list of public fields

# What the integer columns hold on every database (attempts is a 32-bit INTEGER on PostgreSQL,
# so a larger bound parameter would fail there instead of simply not matching).
INT_RANGES: dict[str, tuple[int, int]] = {
    "id": (-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    "attempts": (-(2**31), 2**31 - 1),
}

# Fields that can be sorted, grouped and aggregated on (JSON has no ordering or equality).
ORDERABLE = frozenset(name for name, kind in FIELD_KINDS.items() if kind != "json")
# `search` looks at text fields; account_id is the caller's own on every row, so it is left
# out (otherwise searching "1001" would match everything).
SEARCH_TEXT_FIELDS = tuple(
    name for name, kind in FIELD_KINDS.items() if kind == "str" and name != "account_id"
)
SEARCH_NUMBER_FIELDS = ("id", "attempts")

UNSUPPORTED_KEYS = frozenset({"deep", "alias", "export", "version", "backlink"})
META_KEYS = ("total_count", "filter_count")
AGGREGATE_FUNCTIONS = ("count", "countDistinct", "countAll", "min", "max")

_EQUALITY = {"_eq", "_neq"}
_COMPARISON = {"_lt", "_lte", "_gt", "_gte"}
_SET = {"_in", "_nin"}
_RANGE = {"_between", "_nbetween"}
_NULLISH = {"_null", "_nnull", "_empty", "_nempty"}
_TEXT = {
    "_contains",
    "_ncontains",
    "_icontains",
    "_nicontains",
    "_starts_with",
    "_nstarts_with",
    "_istarts_with",
    "_nistarts_with",
    "_ends_with",
    "_nends_with",
    "_iends_with",
    "_niends_with",
}
OPERATORS = frozenset(_EQUALITY | _COMPARISON | _SET | _RANGE | _NULLISH | _TEXT)


@dataclass(frozen=True, slots=True)
class Context:
    """What dynamic variables resolve to: `$CURRENT_USER` and `$NOW`."""

    user_id: str
    now: datetime


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
    search: ColumnElement[bool] | None = None
    sort: tuple[tuple[str, bool], ...] = ()
    limit: int | None = None
    offset: int = 0
    page: int | None = None
    meta: frozenset[str] = frozenset()
    aggregates: tuple[Aggregate, ...] = ()
    group_by: tuple[str, ...] = ()

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

    def conditions(self) -> list[ColumnElement[bool]]:
        """The request's own conditions (filter and search), to be ANDed with the scope."""
        return [c for c in (self.where, self.search) if c is not None]


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
    where = _parse_filter(params["filter"], ctx) if "filter" in params else None
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


def _known_field(name: str, what: str) -> str:
    if name in FIELD_KINDS:
        return name
    if "." in name:
        raise invalid_query(f'{what} "{name}" is relational; notifications have no related fields')
    if "(" in name:
        raise invalid_query(f'{what} "{name}" uses a function; functions are not supported')
    raise invalid_query(f'{what} "{name}" doesn\'t exist on notifications')


_ALL_FIELDS = re.compile(r"^\*(\.\*)*$")


def _parse_fields(value: Any) -> tuple[str, ...] | None:
    names = _csv_list(value, "fields")
    if not names or any(_ALL_FIELDS.match(n) for n in names):
        return None
    return tuple(dict.fromkeys(_known_field(n, "Field") for n in names))


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
        _known_field(name, "Sort field")
        if name not in ORDERABLE:
            raise invalid_query(f'Can\'t sort on "{name}"')
        out.append((name, descending))
    return tuple(out)


def _parse_group_by(value: Any) -> tuple[str, ...]:
    names: list[str] = []
    for name in _csv_list(value, "groupBy"):
        _known_field(name, "groupBy field")
        if name not in ORDERABLE:
            raise invalid_query(f'Can\'t group by "{name}"')
        names.append(name)
    return tuple(dict.fromkeys(names))


def _parse_aggregate(value: Any) -> tuple[Aggregate, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
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
                _known_field(name, "Aggregate field")
                if function != "count" and name not in ORDERABLE:
                    raise invalid_query(f'Can\'t compute {function} of "{name}"')
            out.append(Aggregate(function, name))
    return tuple(dict.fromkeys(out))


# ---------------------------------------------------------------- filter


def _parse_filter(value: Any, ctx: Context) -> ColumnElement[bool] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise invalid_query("Invalid JSON for filter object") from None
    if value is None:
        return None
    return compile_filter(value, ctx)


def compile_filter(tree: Any, ctx: Context) -> ColumnElement[bool] | None:
    """A Directus filter tree as one boolean expression (None when it has no rules)."""
    budget = [MAX_FILTER_RULES]
    return _compile_node(tree, ctx, 0, budget)


def _compile_node(
    node: Any, ctx: Context, depth: int, budget: list[int]
) -> ColumnElement[bool] | None:
    if not isinstance(node, dict):
        raise invalid_query("Invalid filter object: each filter rule must be an object")
    if depth > MAX_FILTER_DEPTH:
        raise invalid_query(f"Filter is nested deeper than {MAX_FILTER_DEPTH} levels")
    clauses: list[ColumnElement[bool]] = []
    for key, value in node.items():
        if not isinstance(key, str):
            raise invalid_query("Invalid filter object")
        if key in ("_and", "_or"):
            if not isinstance(value, list):
                raise invalid_query(f'"{key}" must be an array of filter objects')
            parts = [_compile_node(v, ctx, depth + 1, budget) for v in value]
            kept = [p for p in parts if p is not None]
            if kept:
                clauses.append(and_(*kept) if key == "_and" else or_(*kept))
        elif key.startswith("_"):
            raise invalid_query(f'"{key}" is not a logical operator; use _and or _or')
        else:
            budget[0] -= 1
            if budget[0] < 0:
                raise invalid_query(f"Filter has more than {MAX_FILTER_RULES} rules")
            clauses.append(_field_rule(key, value, ctx))
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else and_(*clauses)


def _field_rule(name: str, rule: Any, ctx: Context) -> ColumnElement[bool]:
    _known_field(name, "Filter field")
    if isinstance(rule, dict):
        if not rule:
            raise invalid_query(f'Filter on "{name}" has no operator')
        for op in rule:
            if not isinstance(op, str) or not op.startswith("_"):
                raise invalid_query(f'"{name}" has no related fields to filter on ("{op}")')
        ops: dict[str, Any] = rule
    else:
        ops = {"_eq": rule}  # a bare value means _eq
    parts = [_operator(name, op, operand, ctx) for op, operand in ops.items()]
    return parts[0] if len(parts) == 1 else and_(*parts)


def _operator(name: str, op: str, operand: Any, ctx: Context) -> ColumnElement[bool]:
    if op not in OPERATORS:
        raise invalid_query(f'Unknown filter operator "{op}" on "{name}"')
    kind = FIELD_KINDS[name]
    col: ColumnElement[Any] = notifications.c[name]
    if op in _NULLISH:
        return _nullish(col, kind, op, _flag(operand, name, op))
    if kind == "json":
        raise invalid_query(f'"{name}" only supports _null, _nnull, _empty and _nempty')
    if op in _SET:
        values = [_value(kind, v, name, op, ctx) for v in _list_operand(operand, name, op)]
        return col.in_(values) if op == "_in" else col.not_in(values)
    if op in _RANGE:
        items = _list_operand(operand, name, op)
        if len(items) != 2:
            raise invalid_query(f'"{op}" on "{name}" needs exactly two values [from, to]')
        low, high = (_value(kind, v, name, op, ctx) for v in items)
        between = col.between(low, high)
        return between if op == "_between" else not_(between)
    value = _value(kind, operand, name, op, ctx)
    if op in _TEXT:
        if kind != "str":
            raise invalid_query(f'"{op}" only applies to text fields, not "{name}"')
        return _text(col, op, value)
    comparisons: dict[str, Any] = {
        "_eq": col.__eq__,
        "_neq": col.__ne__,
        "_lt": col.__lt__,
        "_lte": col.__le__,
        "_gt": col.__gt__,
        "_gte": col.__ge__,
    }
    result: ColumnElement[bool] = comparisons[op](value)
    return result


def _flag(operand: Any, name: str, op: str) -> bool:
    if operand is None or operand is True or operand in ("true", "1"):
        return True
    if operand is False or operand in ("false", "0"):
        return False
    raise invalid_query(f'"{op}" on "{name}" takes true or false')


def _nullish(col: Any, kind: Kind, op: str, flag: bool) -> ColumnElement[bool]:
    if kind == "json":
        # None may be stored as SQL NULL or as the JSON text `null`: both are "no error".
        is_null: ColumnElement[bool] = or_(col.is_(None), cast(col, Text) == "null")
    else:
        is_null = col.is_(None)
    if op in ("_empty", "_nempty") and kind == "str":
        is_null = or_(col.is_(None), col == "")
    positive = op in ("_null", "_empty")
    return is_null if positive == flag else not_(is_null)


def _list_operand(operand: Any, name: str, op: str) -> list[Any]:
    # URL forms arrive as a CSV string (`filter[id][_in]=1,2`).
    items = operand.split(",") if isinstance(operand, str) and operand != "" else operand
    if not isinstance(items, list) or not items:
        raise invalid_query(f'"{op}" on "{name}" needs a non-empty array')
    if len(items) > MAX_LIST_VALUES:
        raise invalid_query(f'"{op}" on "{name}" has more than {MAX_LIST_VALUES} values')
    return items


def storable_text(text: str, what: str) -> str:
    """`text` if a database can hold it: no NUL character, no lone surrogate."""
    if "\x00" in text:
        raise invalid_query(f"{what} can't contain a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid_query(f"{what} is not valid Unicode text") from None
    return text


def _value(kind: Kind, raw: Any, name: str, op: str, ctx: Context) -> Any:
    """`raw` as a value of the field's kind, dynamic variables resolved."""
    if isinstance(raw, str):
        storable_text(raw, f'The value of "{op}" on "{name}"')
    value = _resolve_dynamic(raw, ctx)
    if value is None:
        raise invalid_query(f'"{op}" on "{name}" needs a value; use _null to match empty values')
    if value == "":
        raise invalid_query(
            f'You can\'t filter "{name}" by an empty string with "{op}"; use _empty or _nempty'
        )
    if kind == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, float) and math.isfinite(value):
            return repr(value)
        raise invalid_query(f'"{op}" on "{name}" needs a string value')
    if kind == "int":
        number: int | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,17}\s*", value):
            number = int(value)
        low, high = INT_RANGES[name]
        if number is None:
            raise invalid_query(f'"{op}" on "{name}" needs an integer value')
        if not low <= number <= high:
            raise invalid_query(f'"{op}" on "{name}" needs an integer between {low} and {high}')
        return number
    # datetime
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is not None:
            return parsed
    raise invalid_query(f'"{op}" on "{name}" needs an ISO 8601 date, $NOW or $NOW(-1 day)')


def parse_datetime(text: str) -> datetime | None:
    """An ISO 8601 date or date-time as an aware UTC datetime (naive means UTC), or None."""
    candidate = text.strip()
    if not candidate or len(candidate) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


_NOW = re.compile(r"^\$NOW(?:\(\s*([+-]?)\s*(\d{1,6})\s*([A-Za-z]+)\s*\))?$")
_UNITS: dict[str, str] = {}
for _unit in ("year", "month", "week", "day", "hour", "minute", "second"):
    _UNITS[_unit] = _UNITS[_unit + "s"] = _unit


def _resolve_dynamic(value: Any, ctx: Context) -> Any:
    if not isinstance(value, str) or not value.startswith("$"):
        return value
    if value == "$CURRENT_USER":
        return ctx.user_id
    if value.startswith("$NOW"):
        match = _NOW.match(value)
        if match is None:
            raise invalid_query(f'"{value}" is not a valid $NOW; write $NOW or $NOW(-1 day)')
        if match.group(2) is None:
            return ctx.now
        amount = int(match.group(2)) * (-1 if match.group(1) == "-" else 1)
        unit = _UNITS.get(match.group(3).lower())
        if unit is None:
            raise invalid_query(f'"{value}" has an unknown unit; use seconds to years')
        try:
            return _shift(ctx.now, amount, unit)
        except (OverflowError, ValueError):
            raise invalid_query(f'"{value}" is out of the supported date range') from None
    if value.startswith("$CURRENT_"):
        raise invalid_query(f'"{value}" is not supported; only $CURRENT_USER and $NOW are')
    return value


def _shift(now: datetime, amount: int, unit: str) -> datetime:
    if unit in ("year", "month"):
        months = amount * (12 if unit == "year" else 1)
        index = now.year * 12 + (now.month - 1) + months
        year, month = divmod(index, 12)
        day = min(now.day, calendar.monthrange(year, month + 1)[1])
        return now.replace(year=year, month=month + 1, day=day)
    seconds = {"week": 604800, "day": 86400, "hour": 3600, "minute": 60, "second": 1}[unit]
    return now + timedelta(seconds=amount * seconds)


# ---------------------------------------------------------------- text matching


class strpos(FunctionElement[int]):
    """Case-sensitive position of a substring (1-based, 0 when absent) on both databases."""

    type = Integer()
    inherit_cache = True
    name = "strpos"


@compiles(strpos)
def _strpos_default(element: strpos, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


@compiles(strpos, "sqlite")
def _strpos_sqlite(element: strpos, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's LIKE ignores ASCII case; instr() does not, which is what _contains promises.
    return f"instr({compiler.process(element.clauses, **kw)})"


def _text(col: Any, op: str, value: str) -> ColumnElement[bool]:
    base = op.lstrip("_")
    negate = base.startswith("n") and base[1:] in {
        "contains",
        "icontains",
        "starts_with",
        "istarts_with",
        "ends_with",
        "iends_with",
    }
    if negate:
        base = base[1:]
    insensitive = base.startswith("i")
    kind = base[1:] if insensitive else base
    expr: ColumnElement[bool]
    if insensitive:
        lowered = func.lower(col)
        needle = value.lower()
        if kind == "contains":
            expr = lowered.contains(needle, autoescape=True)
        elif kind == "starts_with":
            expr = lowered.startswith(needle, autoescape=True)
        else:
            expr = lowered.endswith(needle, autoescape=True)
    elif kind == "contains":
        expr = strpos(col, literal(value, String)) > 0
    elif kind == "starts_with":
        expr = strpos(col, literal(value, String)) == 1
    else:
        # The tail of the column as long as the value; shorter columns can never be equal.
        tail = func.substr(col, func.length(col) - func.length(literal(value, String)) + 1)
        expr = and_(func.length(col) >= func.length(literal(value, String)), tail == value)
    return not_(expr) if negate else expr


def compile_search(text: str) -> ColumnElement[bool]:
    """Directus' `search`: case-insensitive substring over text fields, exact on numbers."""
    storable_text(text, "search")
    needle = text.lower()
    clauses: list[ColumnElement[bool]] = [
        func.lower(notifications.c[name]).contains(needle, autoescape=True)
        for name in SEARCH_TEXT_FIELDS
    ]
    stripped = text.strip()
    if re.fullmatch(r"[+-]?\d{1,16}", stripped):
        number = int(stripped)
        for name in SEARCH_NUMBER_FIELDS:
            low, high = INT_RANGES[name]
            if low <= number <= high:
                clauses.append(notifications.c[name] == number)
    return or_(*clauses) if clauses else false()


# ---------------------------------------------------------------- ordering


def order_by(query: Query) -> list[UnaryExpression[Any]]:
    """The ORDER BY of a row read: the asked sort, then id so pages are stable."""
    terms: list[UnaryExpression[Any]] = []
    names: set[str] = set()
    for name, descending in query.sort:
        col = notifications.c[name]
        terms.append(col.desc() if descending else col.asc())
        names.add(name)
    if "id" not in names:
        terms.append(notifications.c.id.asc())
    return terms


def group_order_by(query: Query) -> list[UnaryExpression[Any]]:
    """Grouped results: the asked sort (on group fields), else the first group field."""
    if query.sort:
        return [notifications.c[n].desc() if d else notifications.c[n].asc() for n, d in query.sort]
    return [notifications.c[name].asc() for name in query.group_by]
