"""Contract §12's rules as pure functions: `send_at`, quiet hours, digest text.

No I/O here, so every rule is tested with plain values; the time always comes in as an
argument (callers pass `clock.utcnow()`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_AHEAD = timedelta(days=90)
# A send_at this far in the past is a late click or a slow network: sent at once. Older is
# almost certainly a mistake (a wrong day or time zone), so it is refused.
GRACE = timedelta(minutes=5)
# An automation sends only with its request's short-lived token (contract §10), which monday
# gives 5 minutes: its notification can't be sent later than that after it was made.
AUTOMATION_HORIZON = timedelta(minutes=5)
MAX_DIGEST_WINDOW_SECONDS = 3600
DIGEST_TEXT_LIMIT = 5000

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def parse_send_at(value: object, now: datetime) -> datetime:
    """`send_at` as an aware UTC datetime; ValueError (its message names the rule) otherwise."""
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise ValueError("must be an ISO 8601 date-time with an offset or Z")
    text = value.strip()
    if "T" not in text and " " not in text and _DATE.match(text):
        raise ValueError("must be an ISO 8601 date-time with an offset or Z, not only a date")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time with an offset or Z") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("needs a UTC offset or Z (e.g. 2026-12-01T09:00:00+01:00)")
    parsed = parsed.astimezone(UTC)
    if parsed > now + MAX_AHEAD:
        raise ValueError("must be at most 90 days ahead")
    if parsed < now - GRACE:
        raise ValueError("is more than 5 minutes in the past")
    return parsed


def is_future(send_at: datetime | None, now: datetime) -> bool:
    """Whether a row with this `send_at` waits (`scheduled`) rather than going out at once."""
    return send_at is not None and send_at > now


# ---------------------------------------------------------------- quiet hours


@dataclass(frozen=True, slots=True)
class QuietHours:
    """`start` inclusive, `end` exclusive, local wall-clock times; may cross midnight."""

    start: time
    end: time

    def as_api(self) -> dict[str, str]:
        return {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M")}


def parse_hhmm(value: object, field: str) -> time:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise ValueError(f'"{field}" must be a 24-hour time "HH:MM"')
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def parse_quiet_hours(value: object) -> QuietHours | None:
    """`{"start", "end"}` or None (off); ValueError naming the part otherwise."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"start", "end"}:
        raise ValueError('"quiet_hours" must be {"start": "HH:MM", "end": "HH:MM"} or null')
    start = parse_hhmm(value["start"], "quiet_hours.start")
    end = parse_hhmm(value["end"], "quiet_hours.end")
    if start == end:
        raise ValueError('"quiet_hours" start and end must differ')
    return QuietHours(start, end)


def zone(identifier: str | None) -> ZoneInfo:
    """The recipient's zone; UTC when monday gave none or one we do not know."""
    if not identifier:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(identifier)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _inside(local: time, quiet: QuietHours) -> bool:
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end  # crosses midnight


def quiet_until(quiet: QuietHours | None, now: datetime, tz: ZoneInfo) -> datetime | None:
    """The end of the quiet hours `now` falls in (UTC), or None when `now` is outside them.

    The end is the first instant at or after `now` whose local wall-clock time is `end`. On a
    daylight-saving day a wall time may not exist (spring forward: 02:30 is skipped, the end
    becomes the first instant after the gap) or exist twice (fall back: the first one is
    taken), which is what zoneinfo's `fold=0` and a UTC round trip give.
    """
    if quiet is None:
        return None
    local = now.astimezone(tz)
    if not _inside(local.time().replace(tzinfo=None), quiet):
        return None
    day = local.date()
    for offset in (0, 1):
        candidate_local = datetime.combine(day + timedelta(days=offset), quiet.end, tzinfo=tz)
        # Normalise non-existent wall times (DST gap) through UTC.
        candidate = candidate_local.astimezone(UTC)
        if candidate.astimezone(tz).time() != quiet.end:
            # In a gap: the wall time does not exist; quiet hours end when the gap does.
            candidate = _after_gap(candidate_local, tz)
        if candidate > now:
            return candidate
    return None  # unreachable: an end exists within a day of any moment


def _after_gap(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first UTC instant whose local time is at or after the non-existent `wall` time
    (the end of the daylight-saving gap), found by bisection between zoneinfo's two readings."""
    naive = wall.replace(tzinfo=None)
    low = wall.replace(fold=1).astimezone(UTC)
    high = wall.replace(fold=0).astimezone(UTC)
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if high.microsecond else high


# ---------------------------------------------------------------- digests


def digest_text(messages: Sequence[str], limit: int = DIGEST_TEXT_LIMIT) -> str:
    """ "N notifications: “a” · “b” …", cut to fit `limit` characters (contract §12)."""
    head = f"{len(messages)} notifications: "
    quoted = [f"“{message}”" for message in messages]
    text = head + " · ".join(quoted)
    if len(text) <= limit:
        return text
    budget = limit - len(head)
    per = max(budget // len(messages) - 4, 8)
    parts: list[str] = []
    for message in messages:
        cut = message if len(message) <= per else message[: per - 1] + "…"
        parts.append(f"“{cut}”")
    text = head + " · ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"
