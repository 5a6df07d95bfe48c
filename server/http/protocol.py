"""The HTTP connection layer under the app: malformed requests and slow clients (§8, §10).

aiohttp answers a request it cannot parse (an over-long request line or header, too many
headers, a bad character) itself, before any middleware runs, with a plain-text 400 that
quotes the offending bytes: an over-long `Authorization` header came back (and was logged)
with the token's start. And it has no read timeout: a client that trickles its request head
or body one byte at a time holds a connection open for as long as it likes.

`GuardedServer` replaces aiohttp's connection handler with `GuardedRequestHandler`, which
answers parse failures in the contract's JSON envelope without echoing the input, and closes
connections whose request head (or body) does not arrive within a deadline. `serve` runs the
app with it; `python -m server serve` uses it, so production does too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from server.errors import ErrorCode, error_body
from server.http.event_loop import new_event_loop
from server.http.heap import settle_heap

log = logging.getLogger(__name__)

_Factory = Callable[
    [RawRequestMessage, StreamReader, RequestHandler, AbstractStreamWriter, "asyncio.Task[None]"],
    web.BaseRequest,
]


def refusal(status: int, exc: BaseException | None) -> tuple[int, ErrorCode, str]:
    """(status, code, message) for a request aiohttp could not handle; never quotes input."""
    if isinstance(exc, LineTooLong):
        return (
            431,
            "REQUEST_HEADER_TOO_LARGE",
            "The request line or a header is too long (at most 8190 bytes each); send a "
            "shorter URL or header.",
        )
    if isinstance(exc, HttpProcessingError) or status == 400:
        return 400, "BAD_REQUEST", "The request is not valid HTTP/1.1."
    if status == 504:
        return 504, "TIMEOUT", "The request took too long to handle."
    return 500, "INTERNAL_SERVER_ERROR", "An unexpected error occurred."


class GuardedRequestHandler(RequestHandler):
    """One client connection: envelope errors and read timeouts (see the module docstring).

    The head timer runs from the connection's start, and from the first byte of each later
    request, until the request head is parsed; the body timer from then until the body has
    arrived. Either one firing closes the connection."""

    def __init__(
        self, manager: web.Server, *, head_timeout: float, body_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self.head_timeout = head_timeout
        self.body_timeout = body_timeout
        self._head_deadline: asyncio.TimerHandle | None = None
        self._body_deadline: asyncio.TimerHandle | None = None
        self._in_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head()

    def data_received(self, data: bytes) -> None:
        if data and not self._in_request:
            self._arm_head()  # the first bytes of a request head: its clock starts now
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def request_started(self, payload: StreamReader) -> None:
        """The head was parsed (called by `GuardedServer`): the body's clock starts."""
        self._in_request = True
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        if not payload.is_eof():
            if self._body_deadline is not None:
                self._body_deadline.cancel()
            self._body_deadline = self._loop.call_later(
                self.body_timeout, self._body_overdue, payload
            )

    def request_finished(self) -> None:
        self._in_request = False

    def _arm_head(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self._loop.call_later(self.head_timeout, self._head_overdue)

    def _disarm(self) -> None:
        for handle in (self._head_deadline, self._body_deadline):
            if handle is not None:
                handle.cancel()
        self._head_deadline = self._body_deadline = None

    def _head_overdue(self) -> None:
        self._head_deadline = None
        log.info("closed a connection whose request head took over %s s", self.head_timeout)
        self.force_close()

    def _body_overdue(self, payload: StreamReader) -> None:
        self._body_deadline = None
        if not payload.is_eof():
            log.info("closed a connection whose request body took over %s s", self.body_timeout)
            self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's last-resort answer, in the contract's envelope. aiohttp's own puts the
        parser's message (which quotes the bad bytes) in the body and the log: neither here."""
        status, code, text = refusal(status, exc)
        if isinstance(exc, ConnectionError):
            log.info("connection lost during %s %s", request.method, request.path)
        elif status >= 500:
            log.error("request failed at the protocol level: %s", type(exc).__name__)
        else:
            log.info("refused a malformed request: %s %s", status, type(exc).__name__)
        if request.writer.output_size > 0:  # a response already started: nothing to add
            raise ConnectionError("response already started")
        response = web.json_response(error_body(code, text), status=status)
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's low-level server, making `GuardedRequestHandler` connections."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        *,
        request_factory: _Factory,
        head_timeout: float,
        body_timeout: float,
        **kwargs: Any,
    ) -> None:
        self._inner_handler = handler
        self._inner_factory = request_factory
        self._timeouts = {"head_timeout": head_timeout, "body_timeout": body_timeout}
        super().__init__(self._handle, request_factory=self._make_guarded, **kwargs)

    def _make_guarded(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        if isinstance(protocol, GuardedRequestHandler):
            protocol.request_started(payload)
        return self._inner_factory(message, payload, protocol, writer, task)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._inner_handler(request)
        finally:
            if isinstance(request.protocol, GuardedRequestHandler):
                request.protocol.request_finished()

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._timeouts, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """`web.AppRunner` whose server is a `GuardedServer` (startup and cleanup unchanged)."""

    def __init__(
        self, app: web.Application, *, head_timeout: float, body_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self._timeouts = (head_timeout, body_timeout)

    async def _make_server(self) -> web.Server:
        # aiohttp's AppRunner runs the app's startup and builds its Server; the Server's
        # handler and request factory are public attributes, the rest is our own kwargs.
        plain = await super()._make_server()
        head_timeout, body_timeout = self._timeouts
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            head_timeout=head_timeout,
            body_timeout=body_timeout,
            **self._kwargs,
        )


class CannotListen(OSError):
    """Binding HOST:PORT failed (in use, not an address of this machine). Any other OSError
    of start-up (the database's LISTEN connection refused, say) is not a port problem."""


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    on_listening: Callable[[], None],
    **timeouts: float,
) -> None:
    runner = GuardedRunner(
        app,
        handle_signals=True,
        access_log=None,
        keepalive_timeout=75.0,  # web.run_app's default
        head_timeout=timeouts["head_timeout"],
        body_timeout=timeouts["body_timeout"],
    )
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            raise CannotListen(*error.args) from error
        settle_heap()  # once the app has started: see server/http/heap.py
        on_listening()
        await asyncio.Event().wait()  # until SIGINT/SIGTERM (GracefulExit) or cancellation
    finally:
        await runner.cleanup()


def run(
    app: web.Application,
    *,
    host: str,
    port: int,
    head_timeout: float,
    body_timeout: float,
    on_listening: Callable[[], None] = lambda: None,
    event_loop: str = "asyncio",
) -> None:
    """`web.run_app` with a `GuardedServer`: serve until SIGINT/SIGTERM, then clean up."""
    loop = new_event_loop(event_loop)
    asyncio.set_event_loop(loop)
    main = loop.create_task(
        _serve(app, host, port, on_listening, head_timeout=head_timeout, body_timeout=body_timeout)
    )
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        main.cancel()
        with suppress(asyncio.CancelledError):
            loop.run_until_complete(main)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
