"""Is the database there? Asked once before `serve` says it is listening (contract §14).

A refused connection or a wrong password becomes one line for the CLI instead of a traceback
from the first migration. The password is never in it. (A SQLite path in a missing folder is
caught before this, naming the folder: server/storage/preflight.py.)
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

PROBE_TIMEOUT_SECONDS = 10.0


async def database_problem(url: str) -> str | None:
    """None when `SELECT 1` answers in PROBE_TIMEOUT_SECONDS; otherwise why not, in one line."""
    engine = create_async_engine(url)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        return None
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT_SECONDS:g} s"
    except Exception as error:  # any driver error is a reason to report
        return _describe(error, make_url(url).password)
    finally:
        await engine.dispose()


def _describe(error: BaseException, password: str | None) -> str:
    # SQLAlchemy wraps driver errors; the driver's own message is the useful one.
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    first = lines[0] if lines else ""
    if password:
        first = first.replace(password, "***")
    return f"{type(cause).__name__}: {first[:200]}" if first else type(cause).__name__
