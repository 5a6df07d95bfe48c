"""The one clock: every "now" the product stores or compares comes from `utcnow()`.

Tests that need another time set `clock.now` (see `frozen`) instead of patching call sites;
the default reads the system clock, always timezone-aware UTC.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime


def _system_now() -> datetime:
    return datetime.now(UTC)


class Clock:
    """A replaceable source of the current UTC time."""

    def __init__(self) -> None:
        self.now: Callable[[], datetime] = _system_now

    def __call__(self) -> datetime:
        return self.now()


clock = Clock()


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the injected clock's, in tests)."""
    return clock()


def utc_timestamp() -> float:
    """`utcnow().timestamp()`; on the system clock without building a datetime (hot paths)."""
    return time.time() if clock.now is _system_now else clock().timestamp()


@contextmanager
def frozen(moment: datetime | Callable[[], datetime]) -> Iterator[None]:
    """Within the block, `utcnow()` answers `moment` (or calls it, for a moving clock)."""
    previous = clock.now
    clock.now = moment if callable(moment) else (lambda: moment)
    try:
        yield
    finally:
        clock.now = previous
