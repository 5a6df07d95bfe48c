"""Waiting for a condition, never for a time: poll until it holds, fail if it never does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

BOUND_SECONDS = 30.0  # generous: a hang fails the test, not the CI job


async def until(condition: Callable[[], object], what: str) -> None:
    """Return once `condition()` is true; fail with `what` after BOUND_SECONDS."""
    deadline = time.monotonic() + BOUND_SECONDS
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.002)


async def until_true(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """`until`, for a condition that must be awaited (a query, say)."""
    deadline = time.monotonic() + BOUND_SECONDS
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.002)
