"""How we read monday's answers: the send classification of contract §6.

A send ends in one of four states:

- ``sent``: monday answered with the notification (it has an id).
- ``retry``: proven *not* executed (rate limits, complexity budget, concurrency, the daily
  limit, or the connection never opened), so sending again cannot notify twice.
- ``failed``: monday answered and said no (an error in ``errors[]``, a 4xx). A 401 also sets
  ``unauthorized`` so the caller marks the credential ``needs_reconnect``.
- ``unknown``: monday may have executed the mutation (contract §10): no answer (timeout after
  sending, a body that is not JSON), any 5xx, or an ``INTERNAL_SERVER_ERROR`` (or any error
  whose ``status_code`` is 5xx) even inside an HTTP 200. monday can fail *after* putting the
  notification in the bell, so such an answer proves nothing either way. Never ``failed``
  (the bell may have it); the deliverer retries it only with the same request and
  Idempotency-Key (contract §11). A 409 to a keyed request (the first is still in flight)
  is ``unknown`` too, with monday's ``Retry-After``.

The error bodies themselves (all of monday's shapes) are read by `error_body.py`.
Messages are scrubbed of the credential before they leave this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from server.clock import utcnow
from server.monday.error_body import ErrorEntry, error_entries, retry_after_header
from server.monday.ratelimit import RateLimitInfo

SendStatus = Literal["sent", "retry", "failed", "unknown"]

DEFAULT_RETRY_SECONDS = 30.0  # monday's own Python SDK sleeps 30 s on a bare 429
CONNECT_RETRY_SECONDS = 10.0  # monday unreachable: try again soon, nothing was sent


class MondayError(Exception):
    """monday could not do what we asked; `message` is safe to show (no credential in it)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "MONDAY_ERROR",
        http_status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.request_id = request_id


class MondayAuthError(MondayError):
    """monday rejected the credential (401 / unauthenticated): it needs reconnecting."""


class MondayUnreachable(MondayError):
    """The request never reached monday (connection refused, DNS, connect timeout)."""


class MondayNoAnswer(MondayError):
    """The request was sent but no answer came (timeout, dropped connection)."""


@dataclass(frozen=True)
class SendOutcome:
    """The result of forwarding one `create_notification` (contract §6)."""

    status: SendStatus
    monday_id: str | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    retry_after_seconds: float | None = None
    unauthorized: bool = False
    daily_limit: bool = False
    http_status: int | None = None
    # monday's `RateLimit` / `RateLimit-Policy` headers of the answer, for the governor.
    rate_limit: RateLimitInfo | None = None


def seconds_until_midnight_utc(now: datetime | None = None) -> float:
    """When monday's daily call limit resets (midnight UTC)."""
    now = now or utcnow()
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return float(math.ceil((tomorrow - now).total_seconds()))


def scrub(text: str | None, secrets: Sequence[str]) -> str | None:
    """`text` with every credential replaced; short strings are not treated as secrets."""
    if text is None:
        return None
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


def _retry_outcome(
    entry: ErrorEntry | None,
    *,
    header_retry: float | None,
    request_id: str | None,
    http_status: int | None,
    now: datetime | None,
) -> SendOutcome:
    code = entry.code if entry else "RATE_LIMIT_EXCEEDED"
    message = entry.message if entry else "monday is rate limiting this account."
    if entry is not None and entry.is_daily_limit:
        return SendOutcome(
            status="retry",
            code=code or "DAILY_LIMIT_EXCEEDED",
            message=message,
            request_id=request_id,
            retry_after_seconds=seconds_until_midnight_utc(now),
            daily_limit=True,
            http_status=http_status,
        )
    retry = entry.retry_in_seconds if entry else None
    if retry is None:
        retry = header_retry
    return SendOutcome(
        status="retry",
        code=code,
        message=message,
        request_id=request_id,
        retry_after_seconds=retry if retry is not None else DEFAULT_RETRY_SECONDS,
        http_status=http_status,
    )


@dataclass(frozen=True)
class AnswerView:
    """What the classifier needs from an HTTP answer (see `client.MondayResponse`)."""

    http_status: int
    body: Any  # parsed JSON, or None when the body was not JSON
    retry_after: str | None = None
    request_id: str | None = None
    rate_limit_retry: float | None = None


def classify_answer(
    answer: AnswerView, aliases: Sequence[str], *, now: datetime | None = None
) -> list[SendOutcome]:
    """One outcome per aliased `create_notification` field of the document, in order."""
    status = answer.http_status
    body = answer.body
    request_id = answer.request_id
    header_retry = retry_after_header(answer.retry_after, now)
    if header_retry is None:
        header_retry = answer.rate_limit_retry

    def every(outcome: SendOutcome) -> list[SendOutcome]:
        return [outcome for _ in aliases]

    if status == 401:
        entries = error_entries(body)
        first = entries[0] if entries else None
        return every(
            SendOutcome(
                status="failed",
                code=(first.code if first and first.code else "UNAUTHORIZED"),
                message="monday rejected the credential (401); reconnect it.",
                request_id=request_id,
                unauthorized=True,
                http_status=status,
            )
        )
    if status == 409:
        # A request with our Idempotency-Key is still in flight at monday (contract §11): it
        # may yet execute, so the rows stay `unknown` and are asked about again later.
        return every(in_flight_outcome(header_retry, request_id))
    if not isinstance(body, Mapping):
        if status == 429:
            return every(
                _retry_outcome(
                    None,
                    header_retry=header_retry,
                    request_id=request_id,
                    http_status=status,
                    now=now,
                )
            )
        return every(
            SendOutcome(
                status="unknown",
                code=f"HTTP_{status}",
                message=f"monday answered HTTP {status} without a readable result; "
                "the notification may or may not have been sent.",
                request_id=request_id,
                http_status=status,
            )
        )

    entries = error_entries(body)
    global_entries = [e for e in entries if not e.path or e.path[0] not in aliases]
    data = body.get("data")
    data = data if isinstance(data, Mapping) else {}
    outcomes: list[SendOutcome] = []
    for alias in aliases:
        own = [e for e in entries if e.path and e.path[0] == alias]
        value = data.get(alias)
        relevant = own or ([] if isinstance(value, Mapping) else global_entries)
        outcomes.append(
            _classify_one(
                value,
                relevant,
                status=status,
                header_retry=header_retry,
                request_id=request_id,
                now=now,
            )
        )
    return outcomes


def _classify_one(
    value: Any,
    entries: list[ErrorEntry],
    *,
    status: int,
    header_retry: float | None,
    request_id: str | None,
    now: datetime | None,
) -> SendOutcome:
    if status >= 500 or any(e.maybe_executed for e in entries):
        if not entries and isinstance(value, Mapping) and value.get("id") is not None:
            # A 5xx that still carries this alias' notification: monday did send it.
            return SendOutcome(
                status="sent", monday_id=str(value["id"]), request_id=request_id, http_status=status
            )
        return _maybe_executed(entries, status=status, request_id=request_id)
    retry_entry = next((e for e in entries if e.is_retry), None)
    if retry_entry is not None or status == 429:
        return _retry_outcome(
            retry_entry,
            header_retry=header_retry,
            request_id=request_id,
            http_status=status,
            now=now,
        )
    if entries:
        first = entries[0]
        unauthorized = any(e.is_unauthorized for e in entries)
        return SendOutcome(
            status="failed",
            code=first.code or (f"HTTP_{status}" if status != 200 else "MONDAY_ERROR"),
            message=first.message,
            request_id=request_id,
            unauthorized=unauthorized,
            http_status=status,
        )
    if status >= 400:
        return SendOutcome(
            status="failed",
            code=f"HTTP_{status}",
            message=f"monday refused the request (HTTP {status}).",
            request_id=request_id,
            http_status=status,
        )
    if isinstance(value, Mapping) and value.get("id") is not None:
        return SendOutcome(
            status="sent", monday_id=str(value["id"]), request_id=request_id, http_status=status
        )
    # HTTP 200, no error, but no notification either: we cannot tell what happened.
    return SendOutcome(
        status="unknown",
        code="EMPTY_RESULT",
        message="monday answered without the notification and without an error.",
        request_id=request_id,
        http_status=status,
    )


def _maybe_executed(
    entries: list[ErrorEntry], *, status: int, request_id: str | None
) -> SendOutcome:
    """`unknown`: monday may have put the notification in the bell before it failed."""
    first = next((e for e in entries if e.maybe_executed), entries[0] if entries else None)
    said = f" ({first.message})" if first is not None else ""
    return SendOutcome(
        status="unknown",
        code=(first.code if first is not None and first.code else f"HTTP_{status}"),
        message=f"monday answered HTTP {status} with an error{said} that does not prove the "
        "notification was not sent; it may be in the bell. It is sent again with the same "
        "Idempotency-Key, so monday delivers it at most once.",
        request_id=request_id,
        http_status=status,
    )


def scrubbed(outcome: SendOutcome, secrets: Sequence[str]) -> SendOutcome:
    """`outcome` with the credential removed from its message."""
    return replace(outcome, message=scrub(outcome.message, secrets))


def unreachable_outcome() -> SendOutcome:
    return SendOutcome(
        status="retry",
        code="MONDAY_UNREACHABLE",
        message="Could not connect to monday; nothing was sent.",
        retry_after_seconds=CONNECT_RETRY_SECONDS,
    )


def in_flight_outcome(retry_after: float | None, request_id: str | None = None) -> SendOutcome:
    return SendOutcome(
        status="unknown",
        code="IDEMPOTENCY_REQUEST_IN_FLIGHT",
        message="monday is still processing the first request with this Idempotency-Key.",
        request_id=request_id,
        retry_after_seconds=retry_after if retry_after is not None else 1.0,
        http_status=409,
    )


def no_answer_outcome(reason: str) -> SendOutcome:
    return SendOutcome(
        status="unknown",
        code="NO_ANSWER",
        message=f"monday did not answer ({reason}); the notification may or may not be sent.",
    )
