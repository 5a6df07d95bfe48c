"""The server under test, in its own process (started by bench.common.served).

`BENCH_SERVE_CONFIG` (JSON): `{"mode": "app" | "bare", "settings": {...}, "monday_token": ...}`.

- `app`: the whole monday-notify server, `create_app(Settings(**settings))`, as
  `monday-notify serve` runs it (JSON logs, aiohttp's access log off, the guarded connection
  handler of server/http/protocol.py, the settings' event loop).
- `bare`: the baseline of issue 3: one aiohttp handler for `POST /notifications` that only
  verifies the session token and forwards `create_notification` to the same (fake) monday
  with aiohttp. No database, no ledger, no sender decision. It runs on the same event loop
  as the app (the settings' `EVENT_LOOP`), so the two differ only in what they do.

Prints `READY <port>` on stdout once listening on 127.0.0.1; stops when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import aiohttp
from aiohttp import web

from server.appkeys import SETTINGS
from server.http.auth import require_session
from server.http.event_loop import new_event_loop
from server.http.heap import settle_heap
from server.logs import configure_logging
from server.monday.client import CREATE_NOTIFICATION
from server.settings import Settings

BARE_HTTP = web.AppKey("bare_http", aiohttp.ClientSession)


def bare_app(settings: Settings, monday_token: str) -> web.Application:
    """Verify the session token, forward create_notification, answer. Nothing else."""

    async def http_client(app: web.Application) -> Any:
        app[BARE_HTTP] = aiohttp.ClientSession()
        yield
        await app[BARE_HTTP].close()

    async def notify(request: web.Request) -> web.Response:
        require_session(request)  # the same verification as the server's
        body = await request.json()
        variables = {
            "user_id": body["recipient"],
            "target_id": body["item"],
            "text": body["message"],
            "target_type": body["collection"],
        }
        headers = {
            "Authorization": monday_token,
            "API-Version": settings.monday_api_version,
            "Content-Type": "application/json",
        }
        async with request.app[BARE_HTTP].post(
            settings.monday_api_url,
            data=json.dumps({"query": CREATE_NOTIFICATION, "variables": variables}),
            headers=headers,
        ) as response:
            answer = await response.json()
        created = (answer.get("data") or {}).get("create_notification") or {}
        return web.json_response(
            {"data": {**body, "delivery_status": "sent", "monday_id": created.get("id")}}
        )

    app = web.Application()
    app[SETTINGS] = settings
    app.cleanup_ctx.append(http_client)
    app.router.add_post("/notifications", notify)
    return app


async def main() -> None:
    config = json.loads(os.environ["BENCH_SERVE_CONFIG"])
    settings = Settings(**config["settings"])
    configure_logging(settings.log_format if settings.log_format != "auto" else "json")
    runner: web.AppRunner
    if config["mode"] == "bare":
        runner = web.AppRunner(bare_app(settings, config["monday_token"]), access_log=None)
    else:
        from server.app import create_app
        from server.http.protocol import GuardedRunner

        runner = GuardedRunner(
            create_app(settings),
            access_log=None,
            head_timeout=settings.request_head_timeout_seconds,
            body_timeout=settings.request_body_timeout_seconds,
        )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    if config["mode"] != "bare":
        settle_heap()  # as `serve` does once listening (server/http/protocol.py)
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    # Stop when the parent closes our stdin (or dies).
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    # The measurement is over: shut down gracefully, but don't let a slow drain (about 1 s
    # here) pad every run; nothing after this point is measured.
    try:
        await asyncio.wait_for(runner.cleanup(), timeout=0.5)
    except TimeoutError:
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    kind = json.loads(os.environ["BENCH_SERVE_CONFIG"])["settings"].get("event_loop", "uvloop")
    with asyncio.Runner(loop_factory=lambda: new_event_loop(kind)) as runner:
        runner.run(main())
