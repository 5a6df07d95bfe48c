"""`GET /metrics`: Prometheus' text format (contract §8), from this app's own registry.

Counters are this process's since it started (Prometheus sums the instances); the queue
gauges are read from the database at scrape time, so every instance reports the same,
shared queue. No account, user or token appears in any label. The route needs no token:
expose it to your scraper only (a private port or a path the load balancer does not route).

To add a metric: count the event in the module that owns it (a `collections.Counter`, or
`server.metrics.latency_histogram` for a duration) and register it in `build_registry` below;
a value computed at scrape time gets a collector like `QueueCollector`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from server.appkeys import SERVICES
from server.delivery import call_log, deliver, governor
from server.metrics import CONTENT_TYPE, PREFIX, CounterFamily
from server.notifications import schedule_events, send
from server.tokens import auth_failures, secret_matches

log = logging.getLogger(__name__)


class QueueCollector(Collector):
    """The outbox read from the database; `refresh` is awaited just before each render."""

    def __init__(self) -> None:
        self.counts: dict[str, int] | None = None
        self.oldest = 0.0

    async def refresh(self, request: web.Request) -> None:
        try:
            self.counts, self.oldest = await request.app[SERVICES].outbox.queue_depth()
        except Exception:  # a scrape must answer even when the database does not
            log.exception("metrics: could not read the queue depth")
            self.counts = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.counts is None:
            yield GaugeMetricFamily(
                PREFIX + "queue_scrape_errors", "1 when the queue could not be read.", value=1
            )
            return
        rows = GaugeMetricFamily(
            PREFIX + "queue_rows",
            "Ledger rows waiting for delivery, by delivery_status (all instances).",
            labels=["delivery_status"],
        )
        for status, count in sorted(self.counts.items()):
            rows.add_metric([status], count)
        yield rows
        yield GaugeMetricFamily(
            PREFIX + "queue_oldest_due_seconds",
            "Age of the oldest row that is due for delivery now (0 when none is).",
            value=self.oldest,
        )


def build_registry(queue: Collector) -> CollectorRegistry:
    """This app's registry: the process's event counters plus the scrape-time `queue`."""
    registry = CollectorRegistry()
    for collector in (
        CounterFamily(
            "notifications_accepted_total",
            "Notifications written to the ledger, by sent_as and transport.",
            ("sent_as", "transport"),
            send.accepted_counts,
        ),
        CounterFamily(
            "notifications_total",
            "Delivery outcomes recorded by this process, by sent_as, transport, delivery_status.",
            ("sent_as", "transport", "delivery_status"),
            deliver.delivery_counts,
        ),
        CounterFamily(
            "auth_failures_total",
            "Refused tokens, by token family and error code.",
            ("family", "code"),
            auth_failures,
        ),
        CounterFamily(
            "auth_secret_matched_total",
            "Verified tokens by family and the index of the secret that matched "
            "(0 = newest; a rotated-out secret still matching means it is still in use).",
            ("family", "secret_index"),
            secret_matches,
        ),
        call_log.monday_latency,
        CounterFamily(
            "monday_errors_total",
            "Notifications monday did not accept, by monday's error code.",
            ("code",),
            deliver.monday_errors,
        ),
        CounterFamily(
            "retries_scheduled_total",
            "Notifications scheduled for another attempt, by the code that caused it.",
            ("code",),
            deliver.retries_scheduled,
        ),
        CounterFamily(
            "rate_limit_waits_total",
            "Calls the governor held back for monday's limits, by reason and by action "
            "(waited in process, or deferred: rows rescheduled without an attempt).",
            ("reason", "action"),
            governor.rate_limit_waits,
        ),
        CounterFamily(
            "notifications_scheduled_total",
            "Rows that became scheduled (contract §12), by reason: send_at (written with a "
            "future send_at), rescheduled (PATCH), quiet_hours or digest (held when due).",
            ("reason",),
            schedule_events.scheduled_counts,
        ),
        CounterFamily(
            "notifications_cancelled_total",
            "Scheduled rows cancelled by their sender or an admin (never sent).",
            (),
            schedule_events.cancelled_counts,
        ),
        CounterFamily(
            "notifications_suppressed_total",
            "Rows suppressed when due because their recipient muted them (never sent).",
            (),
            schedule_events.suppressed_counts,
        ),
        queue,
    ):
        registry.register(collector)
    return registry


class Metrics:
    """One app's registry and its queue collector (kept together so a scrape can refresh)."""

    def __init__(self) -> None:
        self.queue = QueueCollector()
        self.registry = build_registry(self.queue)


METRICS = web.AppKey("metrics", Metrics)


async def metrics(request: web.Request) -> web.Response:
    app_metrics = request.app[METRICS]
    await app_metrics.queue.refresh(request)
    # No await between the refresh and the render: a concurrent scrape can't interleave.
    body = generate_latest(app_metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def setup(app: web.Application) -> None:
    app[METRICS] = Metrics()
    app.router.add_get("/metrics", metrics)
