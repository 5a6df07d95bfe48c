"""A fake of monday's API and OAuth endpoints as a real aiohttp application (contract §9).

Routes (relative to where it is mounted; `/dev/monday` in development mode):

- `POST /v2`: monday's GraphQL endpoint. Validates the document against a small SDL of
  monday's shapes, needs a known token in `Authorization` (raw, no `Bearer`), answers
  `{"data", "extensions": {"request_id"}, "account_id"}` and monday-shaped `errors`, sends
  `RateLimit` / `RateLimit-Policy` on every answer, and can be told to fail.
- `GET /oauth2/authorize`: auto-consent; redirects to `redirect_uri` with `code` and `state`
  for `?user_id=&account_id=` (or the default user). `?deny=1` answers `error=access_denied`.
  PKCE as monday's newer flow: `code_challenge` with `code_challenge_method=S256` only;
  without a challenge, `error=invalid_request` when `fake.require_pkce` is on.
- `POST /oauth2/token`: form or JSON; `authorization_code` (with `code_verifier` when the code
  was issued for a challenge: S256 of it must equal the challenge), and `refresh_token` when
  `fake.issue_refresh_tokens` is on (rotating refresh tokens, `expires_in`).
- `/_control/`: `GET requests`, `GET notifications[?user_id=]`, `GET users`, `POST fail`
  (`{"kind": "rate_limit", "retry_in_seconds": 2, "count": 1}`; `{"kind": "server_error",
  "executes": true, "status": 200}` runs the mutation first, then answers the error, with
  HTTP 500 by default or inside an HTTP 200; `execute-then-hang` (`seconds`, default 600),
  `execute-then-500`, `execute-then-connection-reset` run it and then give no usable answer),
  `POST reset`,
  `POST budget` (`{"minute_budget": 100}` or null).

`Idempotency-Key` as monday documents it (fake_monday_idempotency.py): the first executed
answer is replayed for 30 minutes with `Idempotency-Replayed: true`; a duplicate while the
first is in flight is 409 with `Retry-After`.

Nothing here is a secret: the dev users' API keys are the fake strings `dev-personal-key-user-<id>`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

from server.appkeys import SETTINGS
from server.dev.fake_monday_control import add_control_routes
from server.dev.fake_monday_graphql import run_document
from server.dev.fake_monday_idempotency import IdempotencySlot
from server.dev.fake_monday_state import (
    DEV_ACCOUNT_ID,
    DEV_USERS,
    FAILURE_KINDS,
    FAKE_MONDAY,
    Failure,
    FakeMonday,
    FakeToken,
    ReceivedRequest,
    dev_personal_key,
    seed_dev_users,
    utc_now,
)
from server.monday.outcome import seconds_until_midnight_utc

API_VERSION = re.compile(r"^(\d{4}-(01|04|07|10)|dev)$")
# RFC 7636 §4.1: 43 to 128 unreserved characters.
CODE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")

__all__ = [
    "DEV_ACCOUNT_ID",
    "DEV_USERS",
    "FAILURE_KINDS",
    "FAKE_MONDAY",
    "FakeMonday",
    "create_fake_monday_app",
    "dev_personal_key",
    "seed_dev_users",
    "setup",
]


# -- answers -----------------------------------------------------------------------------
def _account_number(account_id: str | None) -> int | str | None:
    if account_id is None:
        return None
    return int(account_id) if account_id.isdigit() else account_id


def _rate_headers(fake: FakeMonday, account_id: str | None) -> dict[str, str]:
    window = int(fake.minute_window_seconds)
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


def _answer(
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
        body["account_id"] = _account_number(account_id)
    all_headers = _rate_headers(fake, account_id)
    all_headers.update(headers or {})
    return web.json_response(body, status=status, headers=all_headers)


def _error(message: str, code: str, status_code: int, **extensions: Any) -> dict[str, Any]:
    return {
        "message": message,
        "locations": [],
        "extensions": {"code": code, "status_code": status_code, **extensions},
    }


def _unauthorized(fake: FakeMonday, record: ReceivedRequest) -> web.Response:
    return _answer(
        fake, record, None, status=401, errors=[_error("Unauthorized", "UNAUTHORIZED", 401)]
    )


def _failure_response(
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
        error = _error("Rate Limit Exceeded", "RATE_LIMIT_EXCEEDED", 429, **in_body)
        return _answer(fake, record, account_id, status=429, errors=[error], headers=retry_header)
    if kind == "complexity":
        error = _error(
            "Complexity budget exhausted",
            "COMPLEXITY_BUDGET_EXHAUSTED",
            429,
            complexity=params.get("complexity", 30),
            complexity_budget_left=params.get("budget_left", 10),
            complexity_budget_limit=fake.complexity_budget,
            **in_body,
        )
        return _answer(fake, record, account_id, status=429, errors=[error], headers=retry_header)
    if kind == "legacy_complexity":
        body = {
            "error_code": "ComplexityException",
            "status_code": 429,
            "error_message": "Complexity budget exhausted, query cost 30 budget remaining 10 "
            f"out of {fake.complexity_budget} reset in {retry} seconds",
            "account_id": _account_number(account_id),
        }
        return web.json_response(body, status=int(params.get("http_status", 200)))
    if kind == "daily_limit":
        wait = int(seconds_until_midnight_utc())
        error = _error("Daily limit exceeded", "DAILY_LIMIT_EXCEEDED", 429, retry_in_seconds=wait)
        return _answer(
            fake, record, account_id, status=429, errors=[error], headers={"Retry-After": str(wait)}
        )
    if kind == "concurrency":
        error = _error("Concurrency limit exceeded", "maxConcurrencyExceeded", 429, **in_body)
        return _answer(fake, record, account_id, status=429, errors=[error], headers=retry_header)
    if kind == "server_error":
        if params.get("legacy"):
            return web.json_response(
                {"error_message": "Internal server error", "status_code": 500}, status=500
            )
        error = _error("Internal Server Error", "INTERNAL_SERVER_ERROR", 500)
        # `status: 200` is monday's newer habit: the same error inside an HTTP 200.
        status = int(params.get("status", 500))
        return _answer(
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
        return _unauthorized(fake, record)
    raise ValueError(f"no canned answer for {kind!r}")


# -- /v2 ---------------------------------------------------------------------------------
async def _record(request: web.Request, fake: FakeMonday) -> ReceivedRequest:
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


async def graphql_endpoint(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE_MONDAY]
    record = await _record(request, fake)
    token = fake.lookup(request.headers.get("Authorization"))
    if token is not None:
        record.token_kind, record.token_user_id = token.kind, token.user_id
    account_id = token.account_id if token else None
    slot: IdempotencySlot | None = None
    key = request.headers.get("Idempotency-Key")
    if key and token is not None:
        begun = fake.idempotency.begin(token.account_id, key, record.raw_body)
        if isinstance(begun, web.Response):
            return begun  # a replay, or 409 while the first is in flight: nothing runs
        slot = begun
    fake.in_flight += 1
    hung = False
    try:
        invalid_users: set[str] | None = None
        failure = fake.take_failure()
        if failure is not None and failure.kind in ("timeout", "execute_then_hang"):
            # Like a real server, monday keeps working after our client gives up: the hang
            # runs in its own task so a disconnect (and handler cancellation) cannot stop it.
            hung = True
            task = asyncio.ensure_future(_hang(fake, record, token, failure, slot))
            fake.background.add(task)
            task.add_done_callback(fake.background.discard)
            return await asyncio.shield(task)
        if failure is not None and failure.kind == "invalid_user":
            ids = failure.params.get("user_ids") or (
                [failure.params["user_id"]] if "user_id" in failure.params else []
            )
            invalid_users = {str(i) for i in ids}
        elif failure is not None and failure.kind == "execute_then_connection_reset":
            _execute(fake, record, token, None, slot)
            return _reset_connection(request)
        elif failure is not None:
            if failure.kind == "execute_then_500" or (
                failure.kind == "server_error" and failure.params.get("executes")
            ):
                # monday did the work (the bell has it), then failed while answering.
                _execute(fake, record, token, None, slot)
                failure = Failure("server_error", 1, failure.params)
            return _failure_response(fake, failure, record, account_id)
        return _execute(fake, record, token, invalid_users, slot)
    finally:
        fake.in_flight -= 1
        if slot is not None and not hung:
            slot.release()  # a no-op once an execution's answer was kept


def _reset_connection(request: web.Request) -> web.StreamResponse:
    """Drop the TCP connection without an answer (the caller sees a connection reset)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError  # aiohttp stops handling a request whose peer is gone


async def _hang(
    fake: FakeMonday,
    record: ReceivedRequest,
    token: FakeToken | None,
    failure: Failure,
    slot: IdempotencySlot | None,
) -> web.Response:
    try:
        if failure.kind == "execute_then_hang":
            executed = _execute(fake, record, token, None, slot)
            await asyncio.sleep(float(failure.params.get("seconds", 600)))
            return executed
        await asyncio.sleep(float(failure.params.get("seconds", 30)))
        if not failure.params.get("executes", False):
            return web.Response(status=504, text="Gateway Timeout")
        return _execute(fake, record, token, None, slot)
    finally:
        if slot is not None:
            slot.release()


def _execute(
    fake: FakeMonday,
    record: ReceivedRequest,
    token: FakeToken | None,
    invalid_users: set[str] | None,
    slot: IdempotencySlot | None = None,
) -> web.Response:
    if token is None:
        return _unauthorized(fake, record)
    account_id = token.account_id
    if fake.in_flight > fake.concurrency_limit:
        error = _error(
            "Concurrency limit exceeded", "maxConcurrencyExceeded", 429, retry_in_seconds=1
        )
        return _answer(fake, record, account_id, status=429, errors=[error])
    if not fake.charge_minute(account_id):
        wait = fake.window_reset_in(account_id)
        error = _error("Rate Limit Exceeded", "RATE_LIMIT_EXCEEDED", 429, retry_in_seconds=wait)
        return _answer(
            fake, record, account_id, status=429, errors=[error], headers={"Retry-After": str(wait)}
        )
    body = record.body
    if not isinstance(body, Mapping):
        error = _error("Unexpected body: expected a JSON object", "JsonParseException", 400)
        return _answer(fake, record, account_id, status=400, errors=[error])
    query, variables = body.get("query"), body.get("variables")
    if not isinstance(query, str) or not query.strip():
        error = _error("No query string was present", "BadRequest", 400)
        return _answer(fake, record, account_id, status=400, errors=[error])
    if variables is not None and not isinstance(variables, Mapping):
        error = _error("Variables must be a JSON object", "BadRequest", 400)
        return _answer(fake, record, account_id, status=400, errors=[error])
    version = record.api_version
    if version is not None and not API_VERSION.match(version):
        error = _error(f"Invalid API version {version!r}", "InvalidVersionException", 200)
        return _answer(fake, record, account_id, errors=[error])
    operation = body.get("operationName")
    result = run_document(
        fake,
        token,
        query,
        variables,
        operation if isinstance(operation, str) else None,
        request_id=record.request_id,
        invalid_users=invalid_users,
    )
    answer = _answer(
        fake,
        record,
        account_id,
        data=result.data,
        include_data=result.executed,
        errors=result.errors,
    )
    if slot is not None and result.executed:
        slot.keep(answer)  # what a retry with the same Idempotency-Key is answered
    return answer


# -- OAuth -------------------------------------------------------------------------------
def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


async def oauth_authorize(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE_MONDAY]
    await _record(request, fake)
    query = request.query
    redirect_uri = query.get("redirect_uri", "")
    if not redirect_uri.startswith(("http://", "https://")):
        return web.Response(status=400, text="invalid_request: redirect_uri is required")
    client_id = query.get("client_id", "")
    state = {"state": query["state"]} if "state" in query else {}
    if not client_id or (fake.clients and client_id not in fake.clients):
        raise web.HTTPFound(_with_query(redirect_uri, {"error": "unauthorized_client", **state}))
    challenge = query.get("code_challenge")
    if (challenge and query.get("code_challenge_method") != "S256") or (
        not challenge and fake.require_pkce
    ):
        # monday's newer flow: PKCE is required, and S256 is the only method.
        raise web.HTTPFound(_with_query(redirect_uri, {"error": "invalid_request", **state}))
    if query.get("deny"):
        raise web.HTTPFound(_with_query(redirect_uri, {"error": "access_denied", **state}))
    user_id = query.get("user_id") or (fake.default_oauth_user or ("", ""))[0]
    user = fake.users.get(user_id)
    if user is None:
        return web.Response(status=400, text=f"unknown user {user_id!r} in the fake monday")
    account_id = query.get("account_id") or user.account_id
    code = fake.issue_oauth_code(
        user.id,
        account_id,
        client_id=client_id,
        redirect_uri=redirect_uri,
        scope=query.get("scope") or "me:read notifications:write boards:read",
        code_challenge=challenge or None,
    )
    raise web.HTTPFound(_with_query(redirect_uri, {"code": code, **state}))


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def _verifier_matches(challenge: str, verifier: str | None) -> bool:
    """RFC 7636 §4.6 for S256: BASE64URL(SHA256(verifier)) == challenge."""
    if verifier is None or not CODE_VERIFIER.match(verifier):
        return False
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") == challenge


async def oauth_token(request: web.Request) -> web.Response:
    fake = request.app[FAKE_MONDAY]
    record = await _record(request, fake)
    form = record.body if isinstance(record.body, Mapping) else {}
    values = {k: str(v) for k, v in form.items() if v is not None}
    client_id, client_secret = values.get("client_id", ""), values.get("client_secret", "")
    if fake.clients and client_secret not in fake.clients.get(client_id, set()):
        return _oauth_error(401, "invalid_client", "Client authentication failed")
    grant = values.get("grant_type", "authorization_code")
    if grant == "authorization_code":
        if not values.get("code"):
            return _oauth_error(400, "invalid_request", "code is required")
        code = fake.take_code(values["code"])
        if code is None or (code.client_id and code.client_id != client_id):
            return _oauth_error(400, "invalid_grant", "The code is invalid, expired or used")
        if code.redirect_uri and values.get("redirect_uri") != code.redirect_uri:
            return _oauth_error(400, "invalid_grant", "redirect_uri does not match")
        if code.code_challenge and not _verifier_matches(
            code.code_challenge, values.get("code_verifier")
        ):
            return _oauth_error(400, "invalid_grant", "code_verifier does not match the challenge")
        return web.json_response(fake.grant_tokens(code.user_id, code.account_id, code.scope))
    if grant == "refresh_token" and fake.issue_refresh_tokens:
        found = fake.take_refresh_token(values.get("refresh_token", ""))
        if found is None:
            return _oauth_error(400, "invalid_grant", "The refresh token is invalid or used")
        return web.json_response(fake.grant_tokens(*found))
    return _oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")


async def _stop_hung_requests(app: web.Application) -> None:
    tasks = list(app[FAKE_MONDAY].background)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def create_fake_monday_app(fake: FakeMonday) -> web.Application:
    """The fake monday as its own application (serve it alone, or mount it as a sub-app)."""
    app = web.Application()
    app[FAKE_MONDAY] = fake
    app.on_cleanup.append(_stop_hung_requests)
    app.router.add_post("/v2", graphql_endpoint)
    app.router.add_get("/oauth2/authorize", oauth_authorize)
    app.router.add_post("/oauth2/token", oauth_token)
    add_control_routes(app)
    return app


def setup(app: web.Application) -> None:
    """Development mode: mount a fake monday seeded with the dev users at `/dev/monday`."""
    settings = app[SETTINGS]
    fake = FakeMonday()
    fake.require_pkce = True  # the server always sends a challenge: hold it to it
    seed_dev_users(fake)
    for secret in settings.client_secrets:
        fake.register_client(settings.monday_client_id, secret)
    app[FAKE_MONDAY] = fake
    app.add_subapp("/dev/monday", create_fake_monday_app(fake))
