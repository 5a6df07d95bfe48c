"""The fake monday's canned failures: the answers `POST /_control/fail` asks for.

Which failure comes next is kept by the state (`FakeMonday.take_failure`); the /v2 route
decides when a failure executes the mutation first (`fake_monday.py`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from server.dev.fake_monday_http import account_number, monday_answer, monday_error, unauthorized
from server.dev.fake_monday_records import Failure, ReceivedRequest
from server.dev.fake_monday_state import FakeMonday
from server.monday.outcome import seconds_until_midnight_utc


def failure_response(
    fake: FakeMonday, failure: Failure, record: ReceivedRequest, account_id: str | None
) -> web.Response:
    params = failure.params
    retry = params.get("retry_in_seconds", 10)
    retry_header = {"Retry-After": str(retry)} if params.get("retry_after_header", True) else {}
    in_body: dict[str, Any] = (
        {"retry_in_seconds": retry} if params.get("retry_in_body", True) else {}
    )
    kind = failure.kind
    if kind == "rate_limit":
        error = monday_error("Rate Limit Exceeded", "RATE_LIMIT_EXCEEDED", 429, **in_body)
        return monday_answer(
            fake, record, account_id, status=429, errors=[error], headers=retry_header
        )
    if kind == "complexity":
        error = monday_error(
            "Complexity budget exhausted",
            "COMPLEXITY_BUDGET_EXHAUSTED",
            429,
            complexity=params.get("complexity", 30),
            complexity_budget_left=params.get("budget_left", 10),
            complexity_budget_limit=fake.complexity_budget,
            **in_body,
        )
        return monday_answer(
            fake, record, account_id, status=429, errors=[error], headers=retry_header
        )
    if kind == "legacy_complexity":
        body = {
            "error_code": "ComplexityException",
            "status_code": 429,
            "error_message": "Complexity budget exhausted, query cost 30 budget remaining 10 "
            f"out of {fake.complexity_budget} reset in {retry} seconds",
            "account_id": account_number(account_id),
        }
        return web.json_response(body, status=int(params.get("http_status", 200)))
    if kind == "daily_limit":
        wait = int(seconds_until_midnight_utc())
        error = monday_error(
            "Daily limit exceeded", "DAILY_LIMIT_EXCEEDED", 429, retry_in_seconds=wait
        )
        return monday_answer(
            fake, record, account_id, status=429, errors=[error], headers={"Retry-After": str(wait)}
        )
    if kind == "concurrency":
        error = monday_error("Concurrency limit exceeded", "maxConcurrencyExceeded", 429, **in_body)
        return monday_answer(
            fake, record, account_id, status=429, errors=[error], headers=retry_header
        )
    if kind == "server_error":
        if params.get("legacy"):
            return web.json_response(
                {"error_message": "Internal server error", "status_code": 500}, status=500
            )
        error = monday_error("Internal Server Error", "INTERNAL_SERVER_ERROR", 500)
        # `status: 200` is monday's newer habit: the same error inside an HTTP 200.
        status = int(params.get("status", 500))
        return monday_answer(
            fake, record, account_id, status=status, include_data=status == 200, errors=[error]
        )
    if kind == "bad_gateway":
        status = int(params.get("status", 502))
        return web.Response(
            status=status,
            text=f"<html><body><h1>{status} Bad Gateway</h1></body></html>",
            content_type="text/html",
        )
    if kind == "unauthorized":
        return unauthorized(fake, record)
    raise ValueError(f"no canned answer for {kind!r}")


def reset_connection(request: web.Request) -> web.StreamResponse:
    """Drop the TCP connection without an answer (the caller sees a connection reset)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError  # aiohttp stops handling a request whose peer is gone
