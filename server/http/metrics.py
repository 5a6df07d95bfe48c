"""`GET /metrics`: Prometheus' text format (contract §8).

Counters are this process's since it started (Prometheus sums the instances); the queue
gauges are read from the database at scrape time, so every instance reports the same,
shared queue. No account, user or token appears in any label. The route needs no token:
expose it to your scraper only (a private port or a path the load balancer does not route).
"""

from __future__ import annotations

import logging

from aiohttp import web

from server.appkeys import SERVICES
from server.delivery import deliver, governor
from server.metrics import CONTENT_TYPE, family, render
from server.notifications import send
from server.tokens import auth_failures, secret_matches

log = logging.getLogger(__name__)
P = "monday_notify"


async def _queue_families(request: web.Request) -> list[list[str]]:
    try:
        counts, oldest = await request.app[SERVICES].outbox.queue_depth()
    except Exception:  # a scrape must answer even when the database does not
        log.exception("metrics: could not read the queue depth")
        return [
            family(
                f"{P}_queue_scrape_errors",
                "gauge",
                "1 when the queue could not be read.",
                [({}, 1)],
            )
        ]
    return [
        family(
            f"{P}_queue_rows",
            "gauge",
            "Ledger rows waiting for delivery, by delivery_status (all instances).",
            [({"delivery_status": status}, count) for status, count in sorted(counts.items())],
        ),
        family(
            f"{P}_queue_oldest_due_seconds",
            "gauge",
            "Age of the oldest row that is due for delivery now (0 when none is).",
            [({}, oldest)],
        ),
    ]


def _process_families() -> list[list[str]]:
    return [
        family(
            f"{P}_notifications_accepted_total",
            "counter",
            "Notifications written to the ledger, by sent_as and transport.",
            [
                ({"sent_as": sent_as, "transport": transport}, count)
                for (sent_as, transport), count in sorted(send.accepted_counts.items())
            ],
        ),
        family(
            f"{P}_notifications_total",
            "counter",
            "Delivery outcomes recorded by this process, by sent_as, transport, delivery_status.",
            [
                ({"sent_as": a, "transport": t, "delivery_status": s}, count)
                for (a, t, s), count in sorted(deliver.delivery_counts.items())
            ],
        ),
        family(
            f"{P}_auth_failures_total",
            "counter",
            "Refused tokens, by token family and error code.",
            [
                ({"family": fam, "code": code}, count)
                for (fam, code), count in sorted(auth_failures.items())
            ],
        ),
        family(
            f"{P}_auth_secret_matched_total",
            "counter",
            "Verified tokens by family and the index of the secret that matched "
            "(0 = newest; a rotated-out secret still matching means it is still in use).",
            [
                ({"family": fam, "secret_index": str(index)}, count)
                for (fam, index), count in sorted(secret_matches.items())
            ],
        ),
        [
            f"# HELP {P}_monday_request_seconds Time per call to monday's API, by outcome.",
            f"# TYPE {P}_monday_request_seconds histogram",
            *deliver.monday_latency.lines(f"{P}_monday_request_seconds"),
        ],
        family(
            f"{P}_monday_errors_total",
            "counter",
            "Notifications monday did not accept, by monday's error code.",
            [({"code": code}, count) for code, count in sorted(deliver.monday_errors.items())],
        ),
        family(
            f"{P}_retries_scheduled_total",
            "counter",
            "Notifications scheduled for another attempt, by the code that caused it.",
            [({"code": code}, n) for code, n in sorted(deliver.retries_scheduled.items())],
        ),
        family(
            f"{P}_rate_limit_waits_total",
            "counter",
            "Calls the governor held back for monday's limits, by reason and by action "
            "(waited in process, or deferred: rows rescheduled without an attempt).",
            [
                ({"reason": reason, "action": action}, count)
                for (reason, action), count in sorted(governor.rate_limit_waits.items())
            ],
        ),
    ]


async def metrics(request: web.Request) -> web.Response:
    body = render([*_process_families(), *await _queue_families(request)])
    return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
