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

from aiohttp import web

from server.appkeys import ENGINE, HTTP, SERVICES, SETTINGS
from server.delivery.deliver import Deliverer
from server.delivery.gate import ScheduleGate, TimeZones
from server.delivery.governor import Governor
from server.delivery.worker import DeliveryWorker
from server.installations.credentials import InstallationService, OAuthRefresher
from server.installations.crypto import CIPHER, setup_cipher
from server.installations.facts import (
    CredentialResolver,
    InstallationCache,
    InstallationFactsReader,
    installation_facts,
)
from server.installations.lifecycle import LifecycleService
from server.installations.oauth_flow import OAuthFlow
from server.installations.ports import AccountChanges
from server.monday.client import MONDAY
from server.notifications.idempotency import Idempotency, request_bound
from server.notifications.ledger import Ledger
from server.notifications.ports import OutboxStore
from server.notifications.send import SendService
from server.notifications.send_limit import SendRateLimiter
from server.realtime.runtime import build as build_realtime
from server.storage.installations import SqlCredentials, SqlInstallations, SqlOAuthStates
from server.storage.limits import SqlSharedLimits
from server.storage.notifications import SqlIdempotencyKeys, SqlNotificationRows, SqlOutbox
from server.storage.notifications.pacing import SqlSendBacklog
from server.storage.notifications.schedule import SqlSchedule
from server.storage.retention import purge_uninstalled

# Re-exported: these lived here before the installations side had its own module.
__all__ = ["CredentialResolver", "InstallationFactsReader", "Services", "installation_facts"]


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a route may call."""

    send: SendService
    ledger: Ledger
    idempotency: Idempotency
    # Read by /metrics (queue depth); delivery's own use goes through the deliverer.
    outbox: OutboxStore
    worker: DeliveryWorker
    installations: InstallationServices
    # Contract §12: mutes and reschedules (routes), and the recipients' time zones.
    schedule: SqlSchedule | None = None
    time_zones: TimeZones | None = None


@dataclass(frozen=True, slots=True)
class InstallationServices:
    """The installations side (contract §4): what its routes and the send path call."""

    installation: InstallationService  # GET/PATCH /installation, the API key
    lifecycle: LifecycleService  # POST /monday/lifecycle
    oauth: OAuthFlow  # POST /oauth/start, GET /oauth/callback
    # Installation and credential facts for the send path, cached (installations/facts.py).
    cache: InstallationCache
    credentials: CredentialResolver
    changes: AccountChanges


def build_installations(app: web.Application) -> InstallationServices:
    """The installation stores (one cipher, one change feed) and the services over them."""
    engine, settings, changes = app[ENGINE], app[SETTINGS], AccountChanges()
    installations = SqlInstallations(engine, changes)
    credentials = SqlCredentials(engine, app[CIPHER], changes)
    installation = InstallationService(installations, credentials, app[MONDAY])
    cache = InstallationCache(installations, credentials, changes)
    return InstallationServices(
        installation=installation,
        lifecycle=LifecycleService(installations),
        oauth=OAuthFlow(installation, SqlOAuthStates(engine, app[CIPHER]), app[HTTP], settings),
        cache=cache,
        credentials=CredentialResolver(cache, OAuthRefresher(credentials, app[HTTP], settings)),
        changes=changes,
    )


def build(app: web.Application) -> Services:
    """Every service, wired once. Needs the engine, HTTP client, monday client and cipher."""
    settings = app[SETTINGS]
    engine = app[ENGINE]
    installations = build_installations(app)
    # Every committed row change goes to the realtime change bus (contract §13).
    publish = build_realtime(app).bus.publish
    rows = SqlNotificationRows(engine, publish)
    outbox = SqlOutbox(engine, publish)
    credentials = installations.credentials
    # Several instances share PostgreSQL: they share monday's budget and the send rate (§11).
    shared_limits = SqlSharedLimits(engine) if engine.dialect.name == "postgresql" else None
    deliverer = Deliverer(
        outbox=outbox,
        monday=app[MONDAY],
        resolve=credentials.resolve,
        mark_reconnect=credentials.reconnect,
        owner=f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}",
        batch_size=settings.delivery_batch_size,
        max_attempts=settings.delivery_max_attempts,
        governor=Governor(
            concurrency=settings.delivery_concurrency,
            shared=shared_limits,
        ),
        lease_seconds=settings.delivery_lease_seconds,
    )
    send = SendService(
        store=rows,
        facts=InstallationFactsReader(installations.cache),
        dispatcher=deliverer,
        lease_seconds=settings.delivery_lease_seconds,
        limiter=SendRateLimiter(
            settings.send_rate_per_minute,
            backlog=settings.send_backlog_per_user,
            shared=shared_limits is not None,
        ),
        backlog=SqlSendBacklog(engine, publish),
        # Shared limits: the insert spends the account's budget for the requests it stamps.
        budget=deliverer.pretaken.put if shared_limits is not None else None,
    )
    # Contract §12: due scheduled rows are released before each claim; every batch passes
    # the gate (mutes, quiet hours) on its way out.
    schedule = SqlSchedule(engine, publish)
    time_zones = TimeZones(app[MONDAY], credentials.resolve)
    gate = ScheduleGate(schedule, time_zones)
    deliverer.gate, deliverer.gate_clear = gate, gate.clear_due
    worker = DeliveryWorker(
        deliverer,
        poll_seconds=settings.delivery_poll_seconds,
        lease_seconds=settings.delivery_lease_seconds,
        purge=partial(
            purge_uninstalled,
            engine,
            retention_days=settings.uninstall_retention_days,
            changes=installations.changes,
        ),
        release_scheduled=schedule.release_due,
    )
    return Services(
        send=send,
        ledger=Ledger(engine, rows, schedule),
        idempotency=Idempotency(
            SqlIdempotencyKeys(engine),
            rows,
            abandoned_after=request_bound(settings.monday_timeout_seconds, send.inline_max_wait),
        ),
        outbox=outbox,
        worker=worker,
        installations=installations,
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


async def _stop_claiming(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits (up to 60 s) for the requests in flight; the
    # cleanup above, which waits for the worker's batch, only after that wait.
    app[SERVICES].worker.stop_claiming()


def setup(app: web.Application) -> None:
    """Must come after the database, HTTP client and monday client contexts."""
    app.cleanup_ctx.append(_services)
    app.on_shutdown.append(_stop_claiming)
