"""The connection layer of a real `python -m server serve` on 127.0.0.1 (contract §8, §10):
over-long request lines and headers are answered in the JSON envelope without echoing them,
and clients that trickle their request head or body are cut off by read timeouts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Mint
from tests.delivery.procs import ServerProcess
from tests.notifications.helpers import MEMBER

SECRET = "eyJhbGciOiJIUzI1NiJ9.SECRET-TOKEN-START"
TIMEOUT = 1.0  # the test server's head and body timeouts, in seconds
# Upper bound for waiting on a condition; the condition, not this, ends the wait.
WITHIN = 30.0


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'server.db'}",
        "http://127.0.0.1:9/v2",  # never called: nothing here sends
        REQUEST_HEAD_TIMEOUT_SECONDS=str(TIMEOUT),
        REQUEST_BODY_TIMEOUT_SECONDS=str(TIMEOUT),
    )
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


async def exchange(server: ServerProcess, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `raw` on a fresh connection; the status, headers and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), WITHIN)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b"GET /notifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + SECRET.encode()
            + b"x" * 9000
            + b"\r\n\r\n",
            id="authorization",
        ),
        pytest.param(
            b"GET /notifications?filter=" + SECRET.encode() + b"y" * 9000 + b" HTTP/1.1\r\n\r\n",
            id="request-line",
        ),
    ],
)
async def test_over_long_head_is_answered_in_the_envelope_without_echo(
    server: ServerProcess, raw: bytes
) -> None:
    status, headers, body = await exchange(server, raw)
    assert status == 431
    assert headers["content-type"].startswith("application/json")
    [error] = json.loads(body)["errors"]
    assert error["extensions"]["code"] == "REQUEST_HEADER_TOO_LARGE"
    assert "SECRET-TOKEN-START" not in body.decode()
    # Neither in the answer nor in the log: the log is read after the server has answered.
    assert "SECRET-TOKEN-START" not in server.log_path.read_text(errors="replace")


async def test_malformed_header_is_answered_in_the_envelope_without_echo(
    server: ServerProcess,
) -> None:
    raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-SECRET-TOKEN-START\x01: y\r\n\r\n"
    status, headers, body = await exchange(server, raw)
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "SECRET-TOKEN-START" not in body.decode()


async def closed(reader: asyncio.StreamReader) -> bool:
    """Wait (at most WITHIN) for the server to close the connection; True if it did."""
    try:
        await asyncio.wait_for(reader.read(), WITHIN)
    except ConnectionError:
        return True
    except TimeoutError:
        return False
    return True


async def trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Send `data` a byte at a time, slower than any timeout allows in total."""
    for byte in data:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.2)


async def test_slow_request_heads_are_cut_off_while_others_are_served(
    server: ServerProcess,
) -> None:
    connections = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(200)]
    slow_head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 200 + b"\r\n\r\n"
    senders = [asyncio.create_task(trickle(writer, slow_head)) for _, writer in connections]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/healthz") as response:
                assert response.status == 200  # served while 200 slow clients are connected
            results = await asyncio.gather(*(closed(reader) for reader, _ in connections))
            assert all(results), f"{results.count(False)} slow connections were left open"
            async with http.get(server.url + "/healthz") as response:
                assert response.status == 200
    finally:
        for task in senders:
            task.cancel()
        for _, writer in connections:
            writer.close()


async def test_slow_request_body_is_cut_off(server: ServerProcess, mint: Mint) -> None:
    """An authenticated send whose handler waits for the body: the body timer cuts it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: " + mint(user=MEMBER).encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    )
    writer.write(head)
    sender = asyncio.create_task(trickle(writer, b"[" + b" " * 399))
    try:
        assert await closed(reader)
    finally:
        sender.cancel()
        writer.close()


async def test_an_idle_keep_alive_connection_is_not_a_slow_client(server: ServerProcess) -> None:
    """The head timer starts with a request's first byte, not with the previous response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    async def answer() -> bytes:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WITHIN)
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        return head

    try:
        writer.write(request)
        assert (await answer()).startswith(b"HTTP/1.1 200")
        # Idle (the behaviour under test, not a synchronisation) longer than the head timeout.
        await asyncio.sleep(TIMEOUT * 2)
        writer.write(request)
        assert (await answer()).startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
