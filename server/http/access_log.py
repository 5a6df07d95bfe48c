"""One log line per request: method, path (never the query string, which may carry
`?sessionToken=`), status, duration and the request id. aiohttp's own access log stays off
because it prints the raw request line."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from server.logs import request_id_var

access = logging.getLogger("monday_notify.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log the request once it is answered; must run inside `request_context` (the id)."""
    started = time.perf_counter()
    status = 500  # what the client sees when the handler raises something unexpected
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        access.info(
            "%s %s %d %.1f ms",
            request.method,
            request.path,
            status,
            duration_ms,
            extra={
                "fields": {
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "duration_ms": duration_ms,
                    "request_id": request_id_var.get(),
                }
            },
        )
