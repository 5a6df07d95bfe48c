"""The composition root: every service is built here, once, into one `Services` value.

Routes reach the product only through `request.app[SERVICES]`; no route touches the
engine, a store or the deliverer. This is the one module that knows which adapter plays
which port: SQL stores for the notification ports, the `Deliverer` as the send service's
dispatcher, the installation store (with its cipher) for the sender decision's facts.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from server.appkeys import ENGINE, HTTP, SERVICES, SETTINGS
from server.delivery.deliver import Deliverer
from server.delivery.gate import ScheduleGate, TimeZones
from server.delivery.governor import Governor
from server.delivery.worker import DeliveryWorker
from server.installations.credentials import fresh_oauth_token
from server.installations.crypto import CIPHER, CredentialCipher, setup_cipher
from server.installations.retention import purge_uninstalled
from server.installations.store import (
    CredentialKind,
    Installation,
    get_credential,
    get_installation,
    mark_needs_reconnect,
)
from server.monday.client import MONDAY
from server.monday.outcome import MondayError
from server.notifications.idempotency import Idempotency
from server.notifications.ledger import Ledger
from server.notifications.ports import OutboxStore
from server.notifications.send import SendService
from server.notifications.send_limit import SendRateLimiter
from server.sender import DEFAULT_POLICY, POLICIES, InstallationFacts, SenderPolicy
from server.settings import Settings
from server.storage.notifications import SqlIdempotencyKeys, SqlNotificationRows, SqlOutbox
from server.storage.notifications.schedule import SqlSchedule


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a route may call."""

    send: SendService
    ledger: Ledger
    idempotency: Idempotency
    # Read by /metrics (queue depth); delivery's own use goes through the deliverer.
    outbox: OutboxStore
    worker: DeliveryWorker
    # Contract §12: mutes and reschedules (routes), and the recipients' time zones.
    schedule: SqlSchedule | None = None
    time_zones: TimeZones | None = None


def _kind(sent_as: str) -> CredentialKind:
    return "api_key" if sent_as == "installer" else "oauth"


def installation_facts(installation: Installation | None) -> InstallationFacts:
    """What the sender decision needs to know about an account's installation."""
    if installation is None:
        return InstallationFacts(known=False, installed=False, installer_user_id=None)
    # A row that no lifecycle event wrote and nobody installed (e.g. only a policy was saved
    # in local development) does not mean "uninstalled": monday never told us that.
    known = installation.from_lifecycle or installation.installed
    policy: SenderPolicy = (
        installation.sender_policy if installation.sender_policy in POLICIES else DEFAULT_POLICY
    )
    return InstallationFacts(
        known=known,
        installed=installation.installed,
        installer_user_id=installation.installer_user_id,
        sender_policy=policy,
    )


@dataclass(frozen=True, slots=True)
class InstallationFactsReader:
    """The send service's `SenderFactsSource`, over the installation store."""

    engine: AsyncEngine
    cipher: CredentialCipher

    async def installation(self, account_id: str) -> InstallationFacts:
        return installation_facts(await get_installation(self.engine, account_id))

    async def credential_usable(self, account_id: str, user_id: str, kind: str) -> bool:
        credential = await get_credential(
            self.engine,
            self.cipher,
            account_id,
            user_id,
            "api_key" if kind == "api_key" else "oauth",
        )
        return credential is not None and not credential.needs_reconnect


@dataclass(frozen=True, slots=True)
class CredentialResolver:
    """Delivery's view of credentials: a usable token per sender, and "needs reconnect"."""

    engine: AsyncEngine
    cipher: CredentialCipher
    http: aiohttp.ClientSession
    settings: Settings

    async def resolve(
        self, account_id: str, sent_as: str, owner: str, for_others: bool
    ) -> str | None:
        if (sent_as == "installer" or for_others) and not await self._owner_is_installer(
            account_id, owner
        ):
            # Contract §10: a credential is only used for its own owner. The installer's key
            # (or the installer's OAuth token lent to another caller) is usable only while
            # its owner IS the current installer: a row queued before a reinstall by another
            # admin fails NO_CREDENTIAL instead of going out with the former installer's key.
            return None
        credential = await get_credential(
            self.engine, self.cipher, account_id, owner, _kind(sent_as)
        )
        if credential is not None and credential.kind == "oauth":
            # monday's newer OAuth: refresh a token that expires within 5 minutes first.
            try:
                credential = await fresh_oauth_token(
                    self.engine, self.cipher, self.http, self.settings, credential
                )
            except MondayError:
                return None  # expired and monday unreachable: nothing usable right now
        if credential is None or credential.needs_reconnect:
            return None
        return credential.secret

    async def _owner_is_installer(self, account_id: str, owner: str) -> bool:
        installation = await get_installation(self.engine, account_id)
        return (
            installation is not None
            and installation.installed
            and installation.installer_user_id == owner
        )

    async def reconnect(self, account_id: str, sent_as: str, owner: str) -> None:
        await mark_needs_reconnect(self.engine, account_id, owner, _kind(sent_as))


def build(app: web.Application) -> Services:
    """Every service, wired once. Needs the engine, HTTP client, monday client and cipher."""
    settings = app[SETTINGS]
    engine = app[ENGINE]
    cipher = app[CIPHER]
    rows = SqlNotificationRows(engine)
    outbox = SqlOutbox(engine)
    credentials = CredentialResolver(engine, cipher, app[HTTP], settings)
    deliverer = Deliverer(
        outbox=outbox,
        monday=app[MONDAY],
        resolve=credentials.resolve,
        mark_reconnect=credentials.reconnect,
        owner=f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}",
        batch_size=settings.delivery_batch_size,
        max_attempts=settings.delivery_max_attempts,
        governor=Governor(concurrency=settings.delivery_concurrency),
        lease_seconds=settings.delivery_lease_seconds,
    )
    send = SendService(
        store=rows,
        facts=InstallationFactsReader(engine, cipher),
        dispatcher=deliverer,
        lease_seconds=settings.delivery_lease_seconds,
        limiter=SendRateLimiter(settings.send_rate_per_minute),
    )
    # Contract §12: due scheduled rows are released before each claim; every batch passes
    # the gate (mutes, quiet hours) on its way out.
    schedule = SqlSchedule(engine)
    time_zones = TimeZones(app[MONDAY], credentials.resolve, deliverer.short_lived.get)
    deliverer.gate = ScheduleGate(schedule, time_zones)
    worker = DeliveryWorker(
        deliverer,
        poll_seconds=settings.delivery_poll_seconds,
        lease_seconds=settings.delivery_lease_seconds,
        purge=partial(purge_uninstalled, engine, retention_days=settings.uninstall_retention_days),
        release_scheduled=schedule.release_due,
    )
    return Services(
        send=send,
        ledger=Ledger(engine, rows, schedule),
        idempotency=Idempotency(SqlIdempotencyKeys(engine)),
        outbox=outbox,
        worker=worker,
        schedule=schedule,
        time_zones=time_zones,
    )


async def _services(app: web.Application) -> AsyncIterator[None]:
    setup_cipher(app)
    services = build(app)
    app[SERVICES] = services
    services.worker.start()
    yield
    await services.worker.stop()


def setup(app: web.Application) -> None:
    """Must come after the database, HTTP client and monday client contexts."""
    app.cleanup_ctx.append(_services)
