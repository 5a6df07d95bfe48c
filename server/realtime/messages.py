"""The messages of Directus' realtime protocol for `directus_notifications` (§13).

What a client's subscription is, how its query is read, and the shape of the error and
`uid`-tagged answers; `connection.py` runs the connection that exchanges them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from server import jsonlimits
from server.clock import utcnow
from server.errors import ApiError
from server.notifications.filters import Context
from server.notifications.query import Query, parse_query
from server.tokens import Session

EVENTS = ("create", "update", "delete")
QUERY_KEYS = ("fields", "filter", "search", "sort", "limit", "offset", "page")


@dataclass(slots=True)
class Subscription:
    key: str
    uid: str | None
    query: Query
    event: str | None
    share: str | None = None  # its query as a key for shared reads (realtime/shared_reads.py)


def subscription_key(uid: str | None) -> str:
    # A subscription without uid gets a private key (Directus allows several of them).
    return uid if uid is not None else "\0" + secrets.token_hex(8)


def with_uid(message: dict[str, Any], uid: str | None) -> dict[str, Any]:
    if uid is not None:
        message["uid"] = uid
    return message


def error(kind: str, code: str, message: str, uid: str | None = None) -> dict[str, Any]:
    body = {"type": kind, "status": "error", "error": {"code": code, "message": message}}
    return with_uid(body, uid)


def client_message(text: str) -> dict[str, Any]:
    """A client's message: a JSON object, its nesting bounded as every JSON body's (a deep
    one ran the decoder out of stack and ended the connection with no word); ApiError
    `INVALID_PAYLOAD` otherwise."""
    try:
        message = jsonlimits.loads(text)
    except jsonlimits.JsonTooDeep as too_deep:
        raise ApiError(400, "INVALID_PAYLOAD", f"The message's {too_deep}.") from None
    except ValueError:
        message = None
    if not isinstance(message, dict):
        raise ApiError(400, "INVALID_PAYLOAD", "Messages must be JSON objects.")
    return message


def parse_query_message(raw: Any, session: Session) -> Query:
    """A subscription's query: `fields`/`filter` as objects or strings (newer SDKs send
    strings), the read parameters Directus allows; aggregates and the like are refused."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ApiError(400, "INVALID_QUERY", "query must be an object.")
    unknown = sorted(str(k) for k in raw if k not in QUERY_KEYS)
    if unknown:
        raise ApiError(400, "INVALID_QUERY", f"query can't use {', '.join(unknown)} here.")
    params = dict(raw)
    if isinstance(params.get("filter"), str):
        try:
            params["filter"] = jsonlimits.loads(params["filter"])
        except jsonlimits.JsonTooDeep as too_deep:
            raise ApiError(400, "INVALID_QUERY", f"query.filter's {too_deep}.") from None
        except ValueError:
            raise ApiError(400, "INVALID_QUERY", "query.filter must be JSON.") from None
    return parse_query(params, Context(user_id=session.user_id, now=utcnow()))
