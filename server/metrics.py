"""Prometheus' text exposition format (version 0.0.4), written by hand.

The counters live next to the code that counts (plain `collections.Counter`s in
`server/tokens.py`, `server/delivery/*`); this module only has the histogram type and the
rendering, so no metrics library and no global registry is needed. Values are per process:
Prometheus scrapes every instance and sums.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Labels = Mapping[str, str]


@dataclass
class Histogram:
    """Cumulative buckets of observed values (seconds), one series per label set."""

    buckets: Sequence[float] = LATENCY_BUCKETS
    _series: dict[tuple[tuple[str, str], ...], tuple[list[int], list[float]]] = field(
        default_factory=dict
    )

    def observe(self, value: float, labels: Labels | None = None) -> None:
        key = tuple(sorted((labels or {}).items()))
        counts, totals = self._series.setdefault(key, ([0] * len(self.buckets), [0.0, 0.0]))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += 1
        totals[0] += 1
        totals[1] += value

    def count(self, labels: Labels | None = None) -> int:
        series = self._series.get(tuple(sorted((labels or {}).items())))
        return int(series[1][0]) if series else 0

    def lines(self, name: str) -> list[str]:
        out: list[str] = []
        for key, (counts, (total_count, total_sum)) in sorted(self._series.items()):
            labels = dict(key)
            for bound, count in zip(self.buckets, counts, strict=True):
                out.append(sample(f"{name}_bucket", count, {**labels, "le": _number(bound)}))
            out.append(sample(f"{name}_bucket", total_count, {**labels, "le": "+Inf"}))
            out.append(sample(f"{name}_count", total_count, labels))
            out.append(sample(f"{name}_sum", total_sum, labels))
        return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def sample(name: str, value: float, labels: Labels | None = None) -> str:
    """One line: `name{label="value",...} 12`."""
    if labels:
        inner = ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items())
        return f"{name}{{{inner}}} {_number(value)}"
    return f"{name} {_number(value)}"


def family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[Labels, float]] | None = None
) -> list[str]:
    """`# HELP` and `# TYPE` lines, then one sample per (labels, value)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples or ():
        lines.append(sample(name, value, labels))
    return lines


def render(families: Iterable[list[str]]) -> str:
    return "\n".join(line for lines in families for line in lines) + "\n"
