"""Apply Alembic migrations programmatically (used by `db upgrade`, `serve` and the tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade_sync(url: str, revision: str = "head") -> list[str]:
    """Bring the database at `url` to `revision`; the migrations it applied, in order, each as
    "<revision>: <the first line of its docstring>". Runs its own event loop: call off-loop."""
    config = alembic_config(url)
    applied: list[str] = []

    def note(*, step: Any, **_: Any) -> None:
        doc = (step.up_revision.doc or "").strip().splitlines() if step.up_revision else []
        applied.append(f"{step.up_revision_id}: {doc[0] if doc else ''}".rstrip(": "))

    config.attributes["on_version_apply"] = note  # passed on by migrations/env.py
    command.upgrade(config, revision)
    return applied


def head_revision() -> str:
    """The newest migration's revision."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "the migrations have one head"
    return head


async def upgrade(url: str, revision: str = "head") -> list[str]:
    """Async wrapper: Alembic's env runs its own loop, so it goes to a worker thread."""
    return await asyncio.to_thread(upgrade_sync, url, revision)
