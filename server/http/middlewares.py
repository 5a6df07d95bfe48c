"""Middlewares: request ids, the error envelope on every JSON route, security headers."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from server.appkeys import SETTINGS
from server.errors import ApiError, error_body
from server.logs import account_id_var, request_id_var
from server.storage.read_budget import DEFAULT_READ_SECONDS
from server.storage.read_budget import start_request as start_read_budget

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY_BYTES = 1024 * 1024
# Request ids correlate log lines; they grant nothing, so they need not be unpredictable: a
# random prefix per process (instances differ) and a counter, not a getrandom() per request.
_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (echoed as `X-Request-Id`) for logs and support."""
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if incoming.isalnum() and len(incoming) <= 64 else new_request_id()
    request_id_var.set(request_id)
    account_id_var.set(None)
    # The database time this request's ledger reads share (storage/read_budget.py).
    settings = request.app.get(SETTINGS)
    start_read_budget(settings.ledger_read_seconds if settings else DEFAULT_READ_SECONDS)
    response = await handler(request)
    response.headers["X-Request-Id"] = request_id
    return response


def _wants_html(request: web.Request) -> bool:
    return request.path.startswith(("/views/", "/dev")) and request.method == "GET"


@web.middleware
async def error_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into contract §8's envelope: no stack traces, no secrets."""
    try:
        return await handler(request)
    except ApiError as error:
        return web.json_response(error.body(), status=error.status, headers=error.headers)
    except web.HTTPNotFound:
        if _wants_html(request):
            raise
        return web.json_response(
            error_body(
                "ROUTE_NOT_FOUND", f"Route {request.path} doesn't exist.", path=request.path
            ),
            status=404,
        )
    except web.HTTPMethodNotAllowed as exc:
        allowed = sorted(exc.allowed_methods)
        return web.json_response(
            error_body(
                "METHOD_NOT_ALLOWED",
                f"Method {request.method} is not allowed on {request.path}.",
                allowed=allowed,
                current=request.method,
            ),
            status=405,
            headers={"Allow": ", ".join(allowed)},
        )
    except web.HTTPRequestEntityTooLarge:
        return web.json_response(
            error_body(
                "PAYLOAD_TOO_LARGE",
                f"The request body is larger than {MAX_BODY_BYTES} bytes.",
                limit=MAX_BODY_BYTES,
            ),
            status=413,
        )
    except web.HTTPException as exc:
        if exc.status < 400 or _wants_html(request):
            raise
        return web.json_response(
            error_body("HTTP_ERROR", exc.reason or "Request failed."), status=exc.status
        )
    except ConnectionResetError:
        # The client went away (or a read timeout closed it, server/http/protocol.py):
        # nobody is left to answer, and it is not a server bug worth a traceback.
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response(
            error_body("INTERNAL_SERVER_ERROR", "An unexpected error occurred."), status=500
        )


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response
