"""Reading monday's error bodies and `Retry-After`, whichever shape monday used.

All three pre-2025 error shapes are read as well as the current one (monday-platform.md
§5.4), each normalised to an `ErrorEntry` whose properties say what kind of refusal it is.
What a send's answer *means* (sent, retry, failed, unknown) is decided in `outcome.py`.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from server.clock import utcnow

# Codes (or legacy messages) that monday uses when it refused *before* executing.
RETRY_CODES = frozenset(
    {
        "RATE_LIMIT_EXCEEDED",
        "Rate Limit Exceeded",
        "COMPLEXITY_BUDGET_EXHAUSTED",
        "ComplexityException",
        "maxConcurrencyExceeded",
        "FIELD_LIMIT_EXCEEDED",
        "IP_RATE_LIMIT_EXCEEDED",
        "DAILY_LIMIT_EXCEEDED",
    }
)
RETRY_MESSAGES = (
    "rate limit exceeded",
    "minute limit rate exceeded",
    "concurrency limit exceeded",
    "complexity budget exhausted",
    "daily limit exceeded",
)
UNAUTHORIZED_CODES = frozenset({"UNAUTHORIZED", "Unauthorized", "USER_UNAUTHORIZED"})
UNAUTHORIZED_MESSAGES = ("not authenticated", "unauthorized")
# An error that does not prove the mutation was not executed: monday failed while (or after)
# running it. Matched by code, by a 5xx `status_code`, or by the legacy message.
MAYBE_EXECUTED_CODES = frozenset({"INTERNAL_SERVER_ERROR", "InternalServerError"})
MAYBE_EXECUTED_MESSAGES = ("internal server error",)
_RESET_IN = re.compile(r"reset in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)


@dataclass(frozen=True)
class ErrorEntry:
    """One error of any of monday's shapes, normalised."""

    code: str | None
    message: str
    path: tuple[str | int, ...] = ()
    status_code: int | None = None
    retry_in_seconds: float | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_retry(self) -> bool:
        if self.code in RETRY_CODES or self.status_code == 429:
            return True
        lowered = self.message.lower()
        return any(text in lowered for text in RETRY_MESSAGES)

    @property
    def maybe_executed(self) -> bool:
        if self.code in MAYBE_EXECUTED_CODES:
            return True
        if self.status_code is not None and self.status_code >= 500:
            return True
        return self.message.strip().lower() in MAYBE_EXECUTED_MESSAGES

    @property
    def is_daily_limit(self) -> bool:
        return self.code == "DAILY_LIMIT_EXCEEDED" or "daily limit" in self.message.lower()

    @property
    def is_unauthorized(self) -> bool:
        if self.code in UNAUTHORIZED_CODES or self.status_code == 401:
            return True
        return self.code is None and self.message.strip().lower() in UNAUTHORIZED_MESSAGES


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _entry_from_graphql(raw: Any) -> ErrorEntry:
    if isinstance(raw, str):
        return ErrorEntry(code=None, message=raw)
    if not isinstance(raw, Mapping):
        return ErrorEntry(code=None, message=str(raw))
    extensions = raw.get("extensions")
    extensions = extensions if isinstance(extensions, Mapping) else {}
    error_data = extensions.get("error_data")
    error_data = error_data if isinstance(error_data, Mapping) else {}
    path = raw.get("path")
    code = extensions.get("code") or raw.get("error_code") or raw.get("code")
    message = str(raw.get("message") or raw.get("error_message") or code or "monday error")
    retry = _number(extensions.get("retry_in_seconds"))
    if retry is None:
        retry = _number(error_data.get("retry_in_seconds"))
    return ErrorEntry(
        code=str(code) if code else None,
        message=message,
        path=tuple(p for p in path if isinstance(p, str | int)) if isinstance(path, list) else (),
        status_code=int(extensions["status_code"])
        if _number(extensions.get("status_code")) is not None
        else None,
        retry_in_seconds=retry,
        extensions=extensions,
    )


def error_entries(body: Any) -> list[ErrorEntry]:
    """Every error in a monday body, whichever of its shapes it uses."""
    if not isinstance(body, Mapping):
        return []
    entries: list[ErrorEntry] = []
    raw_errors = body.get("errors")
    if isinstance(raw_errors, list):
        entries.extend(_entry_from_graphql(raw) for raw in raw_errors)
    elif isinstance(raw_errors, Mapping | str):
        entries.append(_entry_from_graphql(raw_errors))
    top_code = body.get("error_code")
    top_message = body.get("error_message")
    if top_code or top_message:
        status = _number(body.get("status_code"))
        message = str(top_message or top_code)
        match = _RESET_IN.search(message)
        entries.insert(
            0,
            ErrorEntry(
                code=str(top_code) if top_code else None,
                message=message,
                status_code=int(status) if status is not None else None,
                retry_in_seconds=float(match.group(1)) if match else None,
            ),
        )
    return entries


def retry_after_header(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date)."""
    if not value:
        return None
    seconds = _number(value.strip())
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or utcnow())).total_seconds(), 0.0)
