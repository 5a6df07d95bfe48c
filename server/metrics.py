"""Prometheus metrics through `prometheus_client`, one `CollectorRegistry` per app.

Events are counted where they happen: plain `collections.Counter`s next to the code that counts
(`server/tokens.py`, `server/notifications/send.py`, `server/delivery/*`) and a
`prometheus_client.Histogram` made with `registry=None`. Those are process-wide values (an
instance is a process; Prometheus scrapes every instance and sums). Nothing is registered in
prometheus_client's global default registry: each app builds its own registry
(`server/http/metrics.py`), so two apps in one process (tests) never collide; `CounterFamily`
exposes a `Counter` to it, and a Histogram is registered in it as is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

# Text format 0.0.4: what every Prometheus scrapes (prometheus_client's "latest" may be newer).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "monday_notify_"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def latency_histogram(name: str, documentation: str, labelnames: Sequence[str]) -> Histogram:
    """A seconds histogram owned by a module, registered per app (not in the global registry)."""
    return Histogram(
        PREFIX + name, documentation, labelnames, buckets=LATENCY_BUCKETS, registry=None
    )


class CounterFamily(Collector):
    """A `collections.Counter` read at scrape time as one Prometheus counter family.

    A key is one label value, or a tuple of label values in the order of `labelnames`.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        counts: Counter[Any],
    ) -> None:
        self.name = PREFIX + name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self.counts = counts

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        # A copy: a counter may grow while the family is built (the worker is another task,
        # but a thread-pool caller could be added later).
        for key, count in sorted(dict(self.counts).items(), key=lambda item: str(item[0])):
            labels = key if isinstance(key, tuple) else (key,)
            family.add_metric([str(label) for label in labels], count)
        yield family
