"""Wiring for the send path: cipher, credential resolver, deliverer, worker, send service."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from server.appkeys import ENGINE, HTTP, SETTINGS
from server.delivery.deliver import Deliverer
from server.delivery.governor import Governor
from server.delivery.worker import DeliveryWorker
from server.installations.credentials import fresh_oauth_token
from server.installations.crypto import CIPHER, setup_cipher
from server.installations.store import (
    CredentialKind,
    get_credential,
    get_installation,
    mark_needs_reconnect,
)
from server.monday.client import MONDAY
from server.monday.outcome import MondayError
from server.notifications.send import SendService
from server.notifications.send_limit import SendRateLimiter

SEND = web.AppKey("send", SendService)
WORKER = web.AppKey("delivery_worker", DeliveryWorker)


def _kind(sent_as: str) -> CredentialKind:
    return "api_key" if sent_as == "installer" else "oauth"


async def _owner_is_installer(engine: AsyncEngine, account_id: str, owner: str) -> bool:
    installation = await get_installation(engine, account_id)
    return (
        installation is not None
        and installation.installed
        and installation.installer_user_id == owner
    )


async def _send_path(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = app[ENGINE]
    setup_cipher(app)
    cipher = app[CIPHER]

    async def resolve(account_id: str, sent_as: str, owner: str, for_others: bool) -> str | None:
        if (sent_as == "installer" or for_others) and not await _owner_is_installer(
            engine, account_id, owner
        ):
            # Contract §10: a credential is only used for its own owner. The installer's key
            # (or the installer's OAuth token lent to another caller) is usable only while
            # its owner IS the current installer: a row queued before a reinstall by another
            # admin fails NO_CREDENTIAL instead of going out with the former installer's key.
            return None
        credential = await get_credential(engine, cipher, account_id, owner, _kind(sent_as))
        if credential is not None and credential.kind == "oauth":
            # monday's newer OAuth: refresh a token that expires within 5 minutes first.
            try:
                credential = await fresh_oauth_token(
                    engine, cipher, app[HTTP], settings, credential
                )
            except MondayError:
                return None  # expired and monday unreachable: nothing usable right now
        if credential is None or credential.needs_reconnect:
            return None
        return credential.secret

    async def reconnect(account_id: str, sent_as: str, owner: str) -> None:
        await mark_needs_reconnect(engine, account_id, owner, _kind(sent_as))

    owner = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    deliverer = Deliverer(
        engine=engine,
        monday=app[MONDAY],
        resolve=resolve,
        mark_reconnect=reconnect,
        owner=owner,
        batch_size=settings.delivery_batch_size,
        max_attempts=settings.delivery_max_attempts,
        governor=Governor(concurrency=settings.delivery_concurrency),
        lease_seconds=settings.delivery_lease_seconds,
    )
    app[SEND] = SendService(
        engine,
        cipher,
        deliverer,
        settings.delivery_lease_seconds,
        limiter=SendRateLimiter(settings.send_rate_per_minute),
    )
    worker = DeliveryWorker(
        deliverer,
        poll_seconds=settings.delivery_poll_seconds,
        lease_seconds=settings.delivery_lease_seconds,
    )
    app[WORKER] = worker
    worker.start()
    yield
    await worker.stop()


def setup(app: web.Application) -> None:
    """Must come after the database, HTTP client and monday client contexts."""
    app.cleanup_ctx.append(_send_path)
