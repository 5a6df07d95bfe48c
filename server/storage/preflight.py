"""Is the database one this release can run on? Asked before `serve` says it is listening, and
before `db upgrade` and `keys rotate` touch anything (contract §14: one line, no traceback).

`serve` with MIGRATE_ON_START=false on a database that is not migrated would otherwise listen,
answer /readyz, and fail every request; a database a newer release migrated (a rolled-back
deploy) is at a revision these migrations do not know, which Alembic reports as a traceback.
`serve` started with ENCRYPTION_KEYS that cannot open the stored credentials (the old key
dropped before `keys rotate`, or an instance restarted with the old key alone) would answer
ready and fail every send: it tries a bounded sample first.
"""

from __future__ import annotations

from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import create_async_engine

from server.installations.crypto import CipherError, CredentialCipher
from server.storage.migrate import alembic_config, head_revision
from server.storage.reachable import database_problem
from server.storage.tables import credentials

UPGRADE = "run `monday-notify db upgrade`"
# Credentials tried at start-up: half the oldest, half the newest (by id), so an old key that
# was dropped and a new key that is missing are both seen, and start-up stays quick with many.
CREDENTIAL_SAMPLE = 50


def sqlite_problem(url: str, *, create: bool) -> str | None:
    """Why the SQLite file of `url` cannot be used, in one line; None for PostgreSQL, memory.

    A command that will not migrate (`create` false) must not leave an empty file behind:
    connecting to a missing SQLite file creates it."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):
        return None  # a SQLite URI: its own options say whether it may create the file
    path = Path(database).absolute()
    if not path.parent.is_dir():
        # SQLite says only "unable to open database file"; the default (var/…, relative to
        # the current directory) meets this wherever ./var was never made.
        return (
            f"DATABASE_URL names a SQLite file in {path.parent}, a folder that does not exist: "
            "create it, run from the directory it is relative to, or fix DATABASE_URL."
        )
    if not create and not path.exists():
        return (
            f"DATABASE_URL names a SQLite file that does not exist ({path}): {UPGRADE} to "
            "create it, or fix DATABASE_URL."
        )
    return None


async def database_refusal(url: str, *, need_head: str | None, create: bool) -> str | None:
    """The first reason, in one line, this command cannot work with the database at `url`:
    a SQLite file that is not there when `create` is false (the command will not migrate it),
    no answer to `SELECT 1`, a revision it cannot work with (`revision_problem`)."""
    missing = sqlite_problem(url, create=create)
    if missing is not None:
        return missing
    try:
        # The driver's own checks of the URL (asyncpg's several hosts need a port each) run
        # when an engine is made, before any connection: a SQLAlchemy error, not a driver one.
        await create_async_engine(url).dispose()
    except ArgumentError as error:
        return f"DATABASE_URL is invalid ({str(error)[:200]}): fix it."
    problem = await database_problem(url)
    if problem is not None:
        return (
            f"DATABASE_URL cannot be reached ({problem}): start the database or fix DATABASE_URL."
        )
    return revision_problem(await current_revision(url), need_head=need_head)


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


async def credential_refusal(url: str, keys: list[str], *, dev_secrets: Path | None) -> str | None:
    """Why `keys` cannot serve the stored credentials, in one line; None if a sample of up to
    CREDENTIAL_SAMPLE of them all decrypt (or none is stored). `dev_secrets`: the development
    secrets file the key came from (development mode takes no ENCRYPTION_KEYS)."""
    failed, checked = await undecryptable_credentials(url, keys)
    if not failed:
        return None
    counted = f"cannot decrypt {failed} of the {checked} stored credential(s) tried"
    if dev_secrets is not None:
        return (
            f"the development encryption key in {dev_secrets} {counted}: restore the "
            "dev-secrets.json they were written with, or remove the development database."
        )
    return (
        f"ENCRYPTION_KEYS {counted}: put the key they were written with back into "
        "ENCRYPTION_KEYS (after the new one) and keep it until `monday-notify keys rotate` has "
        'run; see the README, "How credentials are protected".'
    )


async def undecryptable_credentials(url: str, keys: list[str]) -> tuple[int, int]:
    """Of a sample of stored credentials, how many no key decrypts, and how many were tried."""
    cipher = CredentialCipher(keys)
    columns = (credentials.c.id, credentials.c.secret_encrypted, credentials.c.refresh_encrypted)
    half = CREDENTIAL_SAMPLE // 2
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            # Before `serve` migrates an empty database there is no table, and nothing to open.
            if not await connection.run_sync(lambda c: inspect(c).has_table("credentials")):
                return 0, 0
            oldest = await connection.execute(select(*columns).order_by(columns[0]).limit(half))
            sample = {row.id: row for row in oldest}
            newest = select(*columns).order_by(columns[0].desc()).limit(half)
            sample.update({row.id: row for row in await connection.execute(newest)})
    finally:
        await engine.dispose()
    failed = 0
    for row in sample.values():
        try:
            cipher.decrypt(row.secret_encrypted)
            if row.refresh_encrypted:
                cipher.decrypt(row.refresh_encrypted)
        except CipherError:
            failed += 1
    return failed, len(sample)
