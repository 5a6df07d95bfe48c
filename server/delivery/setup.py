"""Wiring for the send path: cipher, credential resolver, deliverer, worker, send service."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator

from aiohttp import web

from server.appkeys import ENGINE, HTTP, SETTINGS
from server.delivery.deliver import Deliverer
from server.delivery.governor import Governor
from server.delivery.worker import DeliveryWorker
from server.installations.credentials import fresh_oauth_token
from server.installations.crypto import CIPHER, setup_cipher
from server.installations.store import CredentialKind, get_credential, mark_needs_reconnect
from server.monday.client import MONDAY
from server.monday.outcome import MondayError
from server.notifications.send import SendService
from server.notifications.send_limit import SendRateLimiter

SEND = web.AppKey("send", SendService)
WORKER = web.AppKey("delivery_worker", DeliveryWorker)


def _kind(sent_as: str) -> CredentialKind:
    return "api_key" if sent_as == "installer" else "oauth"


async def _send_path(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = app[ENGINE]
    setup_cipher(app)
    cipher = app[CIPHER]

    async def resolve(account_id: str, sent_as: str, owner: str) -> str | None:
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
        retention_days=settings.uninstall_retention_days,
    )
    app[WORKER] = worker
    worker.start()
    yield
    await worker.stop()


def setup(app: web.Application) -> None:
    """Must come after the database, HTTP client and monday client contexts."""
    app.cleanup_ctx.append(_send_path)
