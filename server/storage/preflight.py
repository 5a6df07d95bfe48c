"""Is the database one this release can run on? Asked before `serve` says it is listening, and
before `db upgrade` and `keys rotate` touch anything (contract §14: one line, no traceback).

`serve` with MIGRATE_ON_START=false on a database that is not migrated would otherwise listen,
answer /readyz, and fail every request; a database a newer release migrated (a rolled-back
deploy) is at a revision these migrations do not know, which Alembic reports as a traceback.
"""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from server.storage.migrate import alembic_config, head_revision

UPGRADE = "run `monday-notify db upgrade`"


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return {migration.revision for migration in script.walk_revisions()}


async def current_revision(url: str) -> str | None:
    """The database's Alembic revision; None when no migration was ever applied."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_revision)
    finally:
        await engine.dispose()


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def revision_problem(found: str | None, *, need_head: str | None) -> str | None:
    """Why a database at revision `found` cannot be used, in one line; None if it can.

    A revision these migrations do not know is always a problem: nothing here can upgrade
    or read it. One behind the head is a problem only for a caller that will not migrate;
    `need_head` says why it will not (None: the caller migrates)."""
    head = head_revision()
    if found is not None and found not in known_revisions():
        return (
            f"DATABASE_URL's database is at migration revision {found}, which this release "
            f"does not know (its newest is {head}): a newer release migrated it; run that "
            "release (or restore the backup taken before its migration)."
        )
    if found == head or need_head is None:
        return None
    state = "has no schema (no migration applied)" if found is None else f"is at revision {found}"
    return (
        f"DATABASE_URL's database {state}, and this release needs revision {head}: {UPGRADE}"
        f" first ({need_head})."
    )
