"""`GET /metrics`: Prometheus text with the counters, the latency histogram and the queue."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from server.appkeys import ENGINE
from server.logs import RedactingJsonFormatter
from server.storage.tables import notifications
from tests.conftest import ACCOUNT, FakeMondayServer
from tests.delivery.helpers import post, server_on, wait_for
from tests.notifications.helpers import MEMBER


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, parsed by Prometheus' own parser (so the format is valid)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for metric in text_string_to_metric_families(text):
        for sample in metric.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: Any) -> dict[Any, float]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(await response.text())


async def test_metrics_count_deliveries_errors_waits_and_queue(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    fake = fake_monday.fake
    async with server_on(tmp_path, fake_monday) as client:
        before = await scrape(client)
        await post(client, mint, "one")
        fake.fail_next("rate_limit", retry_in_seconds=30)
        await post(client, mint, "two")  # retry_scheduled, due in 30 s
        await post(client, mint, "three")  # the account is paused: deferred, not sent
        bad = await client.get("/notifications", headers={"Authorization": "not-a-jwt"})
        assert bad.status == 401
        after = await scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    p = "monday_notify_"
    assert (
        grew(p + "notifications_total", sent_as="app", transport="server", delivery_status="sent")
        == 1
    )
    assert (
        grew(
            p + "notifications_total",
            sent_as="app",
            transport="server",
            delivery_status="retry_scheduled",
        )
        == 1
    )
    assert grew(p + "notifications_accepted_total", sent_as="app", transport="server") == 3
    assert grew(p + "monday_errors_total", code="RATE_LIMIT_EXCEEDED") == 1
    assert grew(p + "retries_scheduled_total", code="RATE_LIMIT_EXCEEDED") == 1
    assert grew(p + "rate_limit_waits_total", reason="RATE_LIMIT_EXCEEDED", action="deferred") == 1
    assert grew(p + "auth_failures_total", family="session", code="TOKEN_MALFORMED") == 1
    assert grew(p + "auth_secret_matched_total", family="session", secret_index="0") >= 3
    assert grew(p + "monday_request_seconds_count", outcome="sent") == 1
    assert grew(p + "monday_request_seconds_count", outcome="retry") == 1
    # The queue is read from the database: both held rows wait, none is due yet.
    assert value(after, p + "queue_rows", delivery_status="retry_scheduled") == 2
    assert value(after, p + "queue_rows", delivery_status="queued") == 0
    assert value(after, p + "queue_oldest_due_seconds") == 0
    assert len(fake.bell(MEMBER)) == 1


async def test_oldest_due_age_grows_while_nothing_can_send(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    # The worker polls rarely and monday hangs up: the due row waits in the queue.
    async with server_on(
        tmp_path, fake_monday, delivery_poll_seconds=60, monday_api_url="http://127.0.0.1:9/v2"
    ) as client:
        sent = await post(client, mint, "stuck")
        assert sent["delivery_status"] == "retry_scheduled"
        async with client.app[ENGINE].begin() as connection:
            await connection.execute(
                update(notifications).values(
                    next_attempt_at=notifications.c.timestamp, lease_owner=None
                )
            )
        found = await scrape(client)
    assert found[("monday_notify_queue_rows", (("delivery_status", "retry_scheduled"),))] == 1
    assert found[("monday_notify_queue_oldest_due_seconds", ())] > 0


async def test_worker_log_lines_carry_the_account_id(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    """The background worker has no request; its JSON log lines still name the account."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingJsonFormatter())
    logger = logging.getLogger("server.delivery")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        async with server_on(tmp_path, fake_monday) as client:
            fake_monday.fake.fail_next("rate_limit", retry_in_seconds=0.2)
            sent = await post(client, mint, "via the worker")
            await wait_for(client, sent["id"], "sent")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    worker_lines = [
        line for line in lines if line.get("statuses") == {"sent": 1} and "request_id" not in line
    ]
    assert worker_lines, lines
    assert all(line["account_id"] == ACCOUNT for line in worker_lines)
    refused = [line for line in lines if "retry=1" in line["msg"]]
    assert refused and refused[0]["codes"] == ["RATE_LIMIT_EXCEEDED"]
    assert refused[0]["account_id"] == ACCOUNT
    assert "oauth-token-of" not in stream.getvalue()  # the credential never reaches a log


async def test_the_older_client_secret_is_counted_so_it_can_be_retired(
    monday_client: Any, mint: Any
) -> None:
    """Contract §3: which secret matched is counted, per secret index."""
    from tests.conftest import OLD_CLIENT_SECRET

    p = "monday_notify_"
    before = await scrape(monday_client)
    for _ in range(2):
        response = await monday_client.get(
            "/installation", headers={"Authorization": mint(secret=OLD_CLIENT_SECRET)}
        )
        assert response.status == 200
    after = await scrape(monday_client)

    def grew(index: str) -> float:
        name, labels = p + "auth_secret_matched_total", {"family": "session", "secret_index": index}
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("1") == 2
    assert grew("0") == 0


async def test_each_app_has_its_own_registry_and_none_uses_the_global_one(
    tmp_path: Path, fake_monday: FakeMondayServer
) -> None:
    """Two apps in one process both answer /metrics; nothing lands in prometheus' default
    registry (a second app would otherwise fail with a duplicate registration)."""
    from prometheus_client import REGISTRY

    from server.http.metrics import METRICS

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with server_on(tmp_path / "a", fake_monday) as first:
        async with server_on(tmp_path / "b", fake_monday) as second:
            assert first.app[METRICS].registry is not second.app[METRICS].registry
            for client in (first, second):
                found = await scrape(client)
                assert ("monday_notify_queue_oldest_due_seconds", ()) in found
    assert not [m for m in REGISTRY.collect() if m.name.startswith("monday_notify")]


async def test_a_resend_is_counted_as_a_monday_call(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    """The worker's retry of an `unknown` row is a monday call like the first attempt: the
    latency histogram counts it (it counted only first attempts)."""
    fake = fake_monday.fake
    async with server_on(tmp_path, fake_monday, monday_timeout_seconds=0.5) as client:
        before = await scrape(client)
        fake.fail_next("execute-then-500")
        first = await post(client, mint, "asked twice")
        assert first["delivery_status"] == "unknown"
        await wait_for(client, first["id"], "sent")
        after = await scrape(client)
    name = "monday_notify_monday_request_seconds_count"
    calls = len(fake.requests_to("/v2"))
    assert calls >= 2
    counted = sum(
        value(after, name, outcome=outcome) - value(before, name, outcome=outcome)
        for outcome in ("sent", "unknown")
    )
    assert counted == calls
    assert value(after, name, outcome="sent") - value(before, name, outcome="sent") == 1
