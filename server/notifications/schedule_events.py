"""Contract §12 events counted by this process, read by /metrics (`server/http/metrics.py`).

One place for the counters because several modules own events of one family: a row becomes
`scheduled` when it is written with a future `send_at` (`notifications/send.py`), moved by a
PATCH (`notifications/ledger.py`), held by quiet hours (`delivery/gate.py`) or by a digest
window (`delivery/digest.py`). Each module increments by the rows the store says it moved.
Every key exists from the start (at 0), so a dashboard sees the series before the first event.
"""

from __future__ import annotations

from collections import Counter

SEND_AT = "send_at"
RESCHEDULED = "rescheduled"
QUIET_HOURS = "quiet_hours"
DIGEST = "digest"

# Rows that became `scheduled`, by reason (the four above).
scheduled_counts: Counter[str] = Counter(
    dict.fromkeys((SEND_AT, RESCHEDULED, QUIET_HOURS, DIGEST), 0)
)
# Rows cancelled by their sender or an admin, and rows suppressed by a mute (both final).
cancelled_counts: Counter[tuple[()]] = Counter({(): 0})
suppressed_counts: Counter[tuple[()]] = Counter({(): 0})
