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

This module holds the `/v2` route and the app; the OAuth routes are in
`fake_monday_oauth.py`, the canned failures in `fake_monday_faults.py`, the request log and
answer shapes in `fake_monday_http.py`, the document execution in `fake_monday_graphql.py`,
the `/_control/` routes in `fake_monday_control.py` and the state in `fake_monday_state.py`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

from aiohttp import web

from server.appkeys import SETTINGS
from server.dev.fake_monday_control import add_control_routes
from server.dev.fake_monday_faults import failure_response, reset_connection
from server.dev.fake_monday_graphql import run_document
from server.dev.fake_monday_http import monday_answer, monday_error, record_request, unauthorized
from server.dev.fake_monday_idempotency import IdempotencySlot
from server.dev.fake_monday_oauth import oauth_authorize, oauth_token
from server.dev.fake_monday_records import (
    DEV_ACCOUNT_ID,
    DEV_USERS,
    FAILURE_KINDS,
    Failure,
    FakeToken,
    ReceivedRequest,
    dev_personal_key,
)
from server.dev.fake_monday_state import FAKE_MONDAY, FakeMonday, seed_dev_users

API_VERSION = re.compile(r"^(\d{4}-(01|04|07|10)|dev)$")

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


# -- /v2 ---------------------------------------------------------------------------------
async def graphql_endpoint(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE_MONDAY]
    record = await record_request(request, fake)
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
            return reset_connection(request)
        elif failure is not None:
            if failure.kind == "execute_then_500" or (
                failure.kind == "server_error" and failure.params.get("executes")
            ):
                # monday did the work (the bell has it), then failed while answering.
                _execute(fake, record, token, None, slot)
                failure = Failure("server_error", 1, failure.params)
            return failure_response(fake, failure, record, account_id)
        return _execute(fake, record, token, invalid_users, slot)
    finally:
        fake.in_flight -= 1
        if slot is not None and not hung:
            slot.release()  # a no-op once an execution's answer was kept


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
        return unauthorized(fake, record)
    account_id = token.account_id
    if fake.in_flight > fake.concurrency_limit:
        error = monday_error(
            "Concurrency limit exceeded", "maxConcurrencyExceeded", 429, retry_in_seconds=1
        )
        return monday_answer(fake, record, account_id, status=429, errors=[error])
    charged = fake.charge_minute(account_id)
    record.charged_at = fake.clock()
    if not charged:
        wait = fake.window_reset_in(account_id)
        error = monday_error(
            "Rate Limit Exceeded", "RATE_LIMIT_EXCEEDED", 429, retry_in_seconds=wait
        )
        return monday_answer(
            fake, record, account_id, status=429, errors=[error], headers={"Retry-After": str(wait)}
        )
    body = record.body
    if not isinstance(body, Mapping):
        error = monday_error("Unexpected body: expected a JSON object", "JsonParseException", 400)
        return monday_answer(fake, record, account_id, status=400, errors=[error])
    query, variables = body.get("query"), body.get("variables")
    if not isinstance(query, str) or not query.strip():
        error = monday_error("No query string was present", "BadRequest", 400)
        return monday_answer(fake, record, account_id, status=400, errors=[error])
    if variables is not None and not isinstance(variables, Mapping):
        error = monday_error("Variables must be a JSON object", "BadRequest", 400)
        return monday_answer(fake, record, account_id, status=400, errors=[error])
    version = record.api_version
    if version is not None and not API_VERSION.match(version):
        error = monday_error(f"Invalid API version {version!r}", "InvalidVersionException", 200)
        return monday_answer(fake, record, account_id, errors=[error])
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
    answer = monday_answer(
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
