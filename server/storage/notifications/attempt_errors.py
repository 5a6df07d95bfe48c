"""`attempt_errors` (contract §11: the ledger shows the error of every attempt that failed).

`last_error` is the latest error only; `attempt_errors` lists each failed attempt, oldest
first: `{"attempt", "at", "code", "message", "monday_request_id"}`. It is appended inside the
very UPDATE that records the attempt's outcome (no read, no extra statement on the hot path),
by SQL that differs per engine (JSON functions are not portable). The list keeps the latest
`MAX_ATTEMPT_ERRORS` entries and each message at most `MAX_MESSAGE` characters, so a row's
size stays bounded however often it is retried. What goes in is what `last_error` holds
already (our code and message, monday's code, message and request id): never a credential.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, and_, case, cast, func, literal_column
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from server.notifications.serialize import iso_datetime
from server.storage.tables import notifications

t = notifications.c

MAX_ATTEMPT_ERRORS = 20
MAX_MESSAGE = 500


def attempt_error_entry(error: Mapping[str, Any] | None, at: datetime) -> str | None:
    """One entry as JSON text, without its attempt number (the statement adds the row's own);
    None when there is no error to record."""
    if error is None:
        return None
    request_id = error.get("monday_request_id")
    entry = {
        "at": iso_datetime(at),
        "code": str(error.get("code") or "UNKNOWN"),
        "message": str(error.get("message") or "")[:MAX_MESSAGE],
        "monday_request_id": None if request_id is None else str(request_id),
    }
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


class _Appended(FunctionElement[Any]):
    """`attempt_errors` with the entry (JSON text) and its attempt number appended, the oldest
    entry dropped beyond `MAX_ATTEMPT_ERRORS`. Rendered per engine below."""

    type = JSON()
    inherit_cache = True
    name = "attempt_errors_appended"


@compiles(_Appended, "sqlite")
def _sqlite(element: _Appended, compiler: SQLCompiler, **kw: Any) -> str:
    entry, attempt = list(element.clauses)
    current = func.coalesce(t.attempt_errors, literal_column("'[]'"))
    stamped = func.json_set(func.json(entry), literal_column("'$.attempt'"), attempt)
    appended = func.json_insert(current, literal_column("'$[#]'"), stamped)
    capped = case(
        (
            func.json_array_length(current) >= MAX_ATTEMPT_ERRORS,
            func.json_remove(appended, literal_column("'$[0]'")),
        ),
        else_=appended,
    )
    return str(compiler.process(capped, **kw))


@compiles(_Appended, "postgresql")
def _postgresql(element: _Appended, compiler: SQLCompiler, **kw: Any) -> str:
    entry, attempt = list(element.clauses)
    current = func.coalesce(cast(t.attempt_errors, JSONB), literal_column("'[]'::jsonb"))
    stamped = cast(entry, JSONB).op("||")(
        func.jsonb_build_object(literal_column("'attempt'"), attempt)
    )
    appended = current.op("||")(func.jsonb_build_array(stamped))
    capped = case(
        (
            func.jsonb_array_length(current) >= MAX_ATTEMPT_ERRORS,
            appended.op("-")(literal_column("0")),
        ),
        else_=appended,
    )
    return str(compiler.process(cast(capped, JSON), **kw))


def with_attempt_error(
    entry: ColumnElement[Any], attempt: ColumnElement[Any], when: ColumnElement[bool] | None = None
) -> ColumnElement[Any]:
    """The SET value of `attempt_errors`: `entry` (a bound JSON text, `attempt_error_entry`)
    appended as attempt number `attempt` when it is not NULL (and `when` holds), else the
    list as it is."""
    recorded = entry.is_not(None) if when is None else and_(entry.is_not(None), when)
    return case((recorded, _Appended(entry, attempt)), else_=t.attempt_errors)
