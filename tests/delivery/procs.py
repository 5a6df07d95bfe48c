"""Real server processes (`python -m server serve`) for crash and multi-instance tests.

The fake monday runs in the test process (the `fake_monday` fixture, on 127.0.0.1) and the
servers reach it over HTTP like they would reach monday.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from server.storage.db import create_engine
from server.storage.migrate import upgrade
from server.storage.tables import notifications
from tests.conftest import (
    ACCOUNT,
    CLIENT_ID,
    CLIENT_SECRET,
    ENCRYPTION_KEY,
    SIGNING_SECRET,
    FakeMondayServer,
)
from tests.delivery.helpers import free_port, install_account
from tests.notifications.helpers import MEMBER

WAITING = ("queued", "retry_scheduled", "sending")
TERMINAL = ("sent", "failed", "unknown")
MEMBER_TOKEN = "oauth-token-of-member-for-processes"


async def seed(database_url: str, fake: FakeMondayServer) -> None:
    """Migrate, install the app on ACCOUNT and connect MEMBER's app token (known to `fake`)."""
    await upgrade(database_url)
    fake.fake.add_token(MEMBER_TOKEN, MEMBER, ACCOUNT, "oauth")
    engine = create_engine(database_url)
    try:
        await install_account(engine, [(MEMBER, "oauth", MEMBER_TOKEN)])
    finally:
        await engine.dispose()


async def statuses(database_url: str) -> dict[str, int]:
    """How many ledger rows are in each delivery status."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                select(notifications.c.delivery_status, func.count()).group_by(
                    notifications.c.delivery_status
                )
            )
            return {str(status): int(count) for status, count in result.all()}
    finally:
        await engine.dispose()


async def all_rows(database_url: str) -> list[dict[str, Any]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(select(notifications))
            return [dict(row) for row in result.mappings()]
    finally:
        await engine.dispose()


async def wait_until_settled(database_url: str, within: float) -> dict[str, int]:
    """Poll until no row is queued, retry_scheduled or sending; the final counts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        counts = await statuses(database_url)
        if not any(counts.get(status) for status in WAITING):
            return counts
        assert loop.time() < deadline, f"rows still waiting after {within} s: {counts}"
        await asyncio.sleep(0.25)


class PortTaken(AssertionError):
    """The server refused to start because its port was taken meanwhile."""


class ServerProcess:
    """`python -m server serve` in production mode on a free 127.0.0.1 port."""

    def __init__(self, workdir: Path, database_url: str, monday_api_url: str, **env: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "APP_ENV": "production",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "PUBLIC_BASE_URL": self.url,
            "DATABASE_URL": database_url,
            "MONDAY_API_URL": monday_api_url,
            "MONDAY_CLIENT_ID": CLIENT_ID,
            "MONDAY_CLIENT_SECRET": CLIENT_SECRET,
            "MONDAY_SIGNING_SECRET": SIGNING_SECRET,
            "ENCRYPTION_KEYS": ENCRYPTION_KEY,
            "LOG_FORMAT": "json",
            "SEND_RATE_PER_MINUTE": "0",
            **env,
        }
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, within: float = 30.0) -> None:
        """Start and wait until ready. A free port can be taken by another process between
        `free_port()` and the bind (busy machines, parallel runs): then take another."""
        for attempt in range(3):
            try:
                await self._start_once(within)
                return
            except PortTaken:
                if attempt == 2:
                    raise
                self._move_to(free_port())

    def _move_to(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env.update(PORT=str(port), PUBLIC_BASE_URL=self.url)

    async def _start_once(self, within: float) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "server",
                "serve",
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        async with aiohttp.ClientSession() as http:
            while True:
                if self.process.returncode is not None:
                    tail = self.log_tail()
                    last = tail.splitlines()[-1] if tail else ""
                    if f"{self.port} is already in use" in last:
                        raise PortTaken(tail)
                    raise AssertionError(f"the server exited at start:\n{tail}")
                try:
                    async with http.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if loop.time() > deadline:
                    raise AssertionError(f"the server did not start:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, in-flight work is simply gone."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self, within: float = 30.0) -> None:
        """SIGTERM (graceful), then SIGKILL if it does not exit in time."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            await self.kill()


async def post_batches(
    token: str,
    batches: Sequence[tuple[str, Sequence[dict[str, Any]]]],
    *,
    parallel: int,
) -> list[list[dict[str, Any]] | None]:
    """POST each (server URL, rows) to `/notifications`, `parallel` at a time. A request that
    got no answer (the server died) gives None; any answer other than 200 fails the test."""
    semaphore = asyncio.Semaphore(parallel)
    timeout = aiohttp.ClientTimeout(total=120)

    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def one(url: str, batch: Sequence[dict[str, Any]]) -> list[dict[str, Any]] | None:
            async with semaphore:
                try:
                    async with http.post(
                        url + "/notifications",
                        json=list(batch),
                        headers={"Authorization": token},
                    ) as response:
                        text = await response.text()
                        assert response.status == 200, text
                        data: list[dict[str, Any]] = (await response.json())["data"]
                        return data
                except (TimeoutError, aiohttp.ClientConnectionError):
                    return None

        return list(await asyncio.gather(*(one(url, batch) for url, batch in batches)))
