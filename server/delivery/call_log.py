"""The log line of each monday call: one quiet line when everything was sent, a warning
with the statuses and error codes otherwise (read by deliver.py after every call); and the
calls' latency histogram, observed by first attempts (deliver.py) and resends (resend.py)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from server.metrics import latency_histogram
from server.monday.outcome import SendOutcome

log = logging.getLogger(__name__)
monday_latency = latency_histogram(
    "monday_request_seconds", "Time per call to monday's API, by outcome.", ("outcome",)
)


def call_outcome(outcomes: Sequence[SendOutcome]) -> str:
    """One word for a call: `sent` if anything went through, else the first status."""
    statuses = {outcome.status for outcome in outcomes}
    if "sent" in statuses:
        return "sent"
    return next(iter(sorted(statuses)), "none")


def log_batch(sent_as: str, owner: str, outcomes: Sequence[SendOutcome]) -> None:
    if all(outcome.status == "sent" for outcome in outcomes):
        # The common line of every send: no `:` or `=` in it, so the formatter's redaction
        # has nothing to look for (server/logs.py), and the counts go as fields only.
        statuses = {"sent": len(outcomes)} if outcomes else {}
        fields = {"sent_as": sent_as, "credential_owner": owner, "statuses": statuses}
        log.info(
            "monday answered %d notification(s), all sent", len(outcomes), extra={"fields": fields}
        )
        return
    counts: Counter[str] = Counter(outcome.status for outcome in outcomes)
    fields = {"sent_as": sent_as, "credential_owner": owner, "statuses": dict(counts)}
    codes = sorted({outcome.code for outcome in outcomes if outcome.code})
    log.warning(
        "monday answered %d notification(s): %s",
        len(outcomes),
        ", ".join(f"{status}={count}" for status, count in sorted(counts.items())),
        extra={"fields": {**fields, "codes": codes}},
    )
