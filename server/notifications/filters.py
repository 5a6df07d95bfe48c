"""Directus filter rules and `search`, compiled to SQLAlchemy Core boolean expressions.

Every value reaches the database as a bound parameter of the column's own type (datetimes
are parsed to aware UTC datetimes first), so the same filter compares correctly on SQLite
and PostgreSQL and nothing a caller writes is ever pasted into SQL. Anything malformed is a
400 `INVALID_QUERY` that says what to fix. The rest of Directus' query parameters are read in
`server.notifications.query`; the fields and their kinds in `server.notifications.fields`.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, Text, and_, cast, func, literal, not_, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from server.errors import invalid_query
from server.notifications.fields import (
    FIELD_KINDS,
    INT_RANGES,
    Kind,
    known_field,
)
from server.storage.tables import notifications

# A filter tree deeper than this is not a real query; refusing it keeps recursion bounded.
MAX_FILTER_DEPTH = 16
# SQLite refuses an expression tree deeper than 1,000, and an `_or` of n rules is n deep
# (with the scope and visibility around it, 495 was the most that ran): 200 leaves room.
MAX_FILTER_RULES = 200
# The longest text stored (a message, inputs.py MAX_MESSAGE_CHARS): a longer text value can
# match nothing, and SQLite refuses LIKE patterns over 50,000 bytes (a 500, before).
MAX_TEXT_VALUE_CHARS = 5000
MAX_LIST_VALUES = 10_000

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


# ---------------------------------------------------------------- filter


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
    known_field(name, "Filter field")
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
    if kind == "bool" and op in _COMPARISON:
        raise invalid_query(f'"{op}" does not apply to "{name}" (true or false)')
    if op in _TEXT:
        if kind != "str":
            raise invalid_query(f'"{op}" only applies to text fields, not "{name}"')
        short_enough(value, f'"{op}" on "{name}"')
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
        # None is SQL NULL (storage/tables.py `NullableJSON`, migration 0013); the JSON text
        # `null` is "no error" too, wherever it may come from.
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


def equality_value(name: str, raw: Any, ctx: Context) -> Any:
    """What `{name: {_eq: raw}}` compares the field with (a rule `compile_filter` accepted)."""
    return _value(FIELD_KINDS[name], raw, name, "_eq", ctx)


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
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "1", 1):
            return True
        if value in ("false", "0", 0):
            return False
        raise invalid_query(f'"{op}" on "{name}" needs true or false')
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


def short_enough(text: str, what: str) -> None:
    if len(text) > MAX_TEXT_VALUE_CHARS:
        raise invalid_query(
            f"{what} is longer than {MAX_TEXT_VALUE_CHARS} characters, the longest text stored"
        )
