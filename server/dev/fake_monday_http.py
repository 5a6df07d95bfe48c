"""What every route of the fake monday shares: the request log and monday-shaped answers.

Each answer carries `extensions.request_id`, `account_id` and monday's `RateLimit` /
`RateLimit-Policy` headers, as the real API's do (monday-platform.md).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from server.dev.fake_monday_records import ReceivedRequest, utc_now
from server.dev.fake_monday_state import FakeMonday


async def record_request(request: web.Request, fake: FakeMonday) -> ReceivedRequest:
    raw = await request.read()
    body: Any
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if body is None and raw and request.content_type == "application/x-www-form-urlencoded":
        body = dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
    record = ReceivedRequest(
        method=request.method,
        path=request.path,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        raw_body=raw,
        at=utc_now(),
        request_id=str(uuid.uuid4()),
    )
    fake.requests.append(record)
    return record


def account_number(account_id: str | None) -> int | str | None:
    if account_id is None:
        return None
    return int(account_id) if account_id.isdigit() else account_id


def rate_headers(fake: FakeMonday, account_id: str | None) -> dict[str, str]:
    # Whole seconds, rounded up like `t`: a fractional test window must not read shorter.
    window = math.ceil(fake.minute_window_seconds)
    policy = (
        f'"minuteRate";q={fake.minute_quota};w={window}, '
        f'"concurrency";q={fake.concurrency_limit};qu="concurrent-requests", '
        f'"complexityMinute";q={fake.complexity_budget};w=60;qu="content-bytes"'
    )
    headers = {"RateLimit-Policy": policy}
    if account_id is not None:
        reset = fake.window_reset_in(account_id)
        concurrency_left = max(fake.concurrency_limit - fake.in_flight, 0)
        headers["RateLimit"] = (
            f'"minuteRate";r={fake.minute_remaining(account_id)};t={reset}, '
            f'"concurrency";r={concurrency_left}, '
            f'"complexityMinute";r={max(fake.complexity_left(account_id), 0)};t={reset}'
        )
    return headers


def monday_answer(
    fake: FakeMonday,
    record: ReceivedRequest,
    account_id: str | None,
    *,
    status: int = 200,
    data: Any = None,
    include_data: bool = False,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    body: dict[str, Any] = {}
    if include_data:
        body["data"] = data
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    body["extensions"] = {"request_id": record.request_id}
    if account_id is not None:
        body["account_id"] = account_number(account_id)
    all_headers = rate_headers(fake, account_id)
    all_headers.update(headers or {})
    return web.json_response(body, status=status, headers=all_headers)


def monday_error(message: str, code: str, status_code: int, **extensions: Any) -> dict[str, Any]:
    return {
        "message": message,
        "locations": [],
        "extensions": {"code": code, "status_code": status_code, **extensions},
    }


def unauthorized(fake: FakeMonday, record: ReceivedRequest) -> web.Response:
    return monday_answer(
        fake, record, None, status=401, errors=[monday_error("Unauthorized", "UNAUTHORIZED", 401)]
    )
