"""The fake monday's memory: users, tokens, what it received, what it delivered, what to break.

Kept apart from the HTTP layer so tests and the developer harness can read and steer it
in-process (`FakeMonday`) or over HTTP (the `/_control/` routes in `fake_monday_control.py`).
The records it holds are defined in `fake_monday_records.py`.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from server.dev.fake_monday_idempotency import IdempotencyCache
from server.dev.fake_monday_records import (
    APP_TOKEN_KINDS,
    DEV_ACCOUNT_ID,
    DEV_USERS,
    FAILURE_KINDS,
    TOKEN_KINDS,
    DeliveredNotification,
    Failure,
    FakeToken,
    FakeUser,
    OAuthCode,
    ReceivedRequest,
    dev_personal_key,
    dev_short_lived_token,
    utc_now,
)


@dataclass
class _Window:
    started: float
    count: int = 0


class FakeMonday:
    """State of the fake monday. Not thread-safe; lives on the event loop that serves it."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.users: dict[str, FakeUser] = {}
        self.tokens: dict[str, FakeToken] = {}
        self.account_names: dict[str, tuple[str, str]] = {}
        self.clients: dict[str, set[str]] = {}
        self.requests: list[ReceivedRequest] = []
        self.notifications: list[DeliveredNotification] = []
        self.failures: deque[Failure] = deque()
        # Requests per account per window before a 429 (None: unlimited).
        self.minute_budget: int | None = None
        self.minute_window_seconds: float = 60.0
        self.complexity_budget: int = 10_000_000
        self.concurrency_limit: int = 250
        self.issue_refresh_tokens: bool = False
        # monday's newer OAuth flow: an authorize request without a PKCE challenge is refused.
        # Off by default so the legacy flow can be exercised; development mode turns it on.
        self.require_pkce: bool = False
        self.access_token_lifetime_seconds: int = 3600
        self.default_oauth_user: tuple[str, str] | None = None
        self.in_flight: int = 0
        self.background: set[asyncio.Task[Any]] = set()  # hung requests still being served
        self.idempotency = IdempotencyCache(clock=clock)  # Idempotency-Key answers
        self._codes: dict[str, OAuthCode] = {}
        self._refresh_tokens: dict[str, tuple[str, str, str]] = {}
        self._windows: dict[str, _Window] = {}
        self._complexity_used: dict[str, _Window] = {}
        self._next_notification_id = 1

    # -- set-up -------------------------------------------------------------------------
    def add_user(self, user_id: str, account_id: str, name: str, email: str) -> FakeUser:
        user = FakeUser(str(user_id), name, email, str(account_id))
        self.users[user.id] = user
        if self.default_oauth_user is None:
            self.default_oauth_user = (user.id, user.account_id)
        return user

    def set_time_zone(self, user_id: str, time_zone: str | None) -> None:
        """What `users { time_zone_identifier }` answers for this user (contract §12)."""
        self.users[str(user_id)] = replace(self.users[str(user_id)], time_zone=time_zone)

    def add_account(self, account_id: str, name: str, slug: str) -> None:
        self.account_names[str(account_id)] = (name, slug)

    def account_info(self, account_id: str) -> tuple[str, str]:
        return self.account_names.get(
            account_id, (f"Account {account_id}", f"account-{account_id}")
        )

    def add_token(
        self,
        token: str,
        user_id: str,
        account_id: str,
        kind: str,
        *,
        expires_in: float | None = None,
    ) -> FakeToken:
        if kind not in TOKEN_KINDS:
            raise ValueError(f"unknown token kind {kind!r}; use one of {TOKEN_KINDS}")
        expires_at = time.time() + expires_in if expires_in is not None else None
        entry = FakeToken(token, str(user_id), str(account_id), kind, expires_at)
        self.tokens[token] = entry
        return entry

    def issue_token(self, user_id: str, account_id: str, kind: str) -> str:
        """A fresh random token of `kind` for the user (e.g. a seamless or short-lived one)."""
        token = f"fake-{kind.replace('_', '-')}-{secrets.token_urlsafe(18)}"
        self.add_token(token, user_id, account_id, kind)
        return token

    def register_client(self, client_id: str, client_secret: str) -> None:
        """An OAuth client the token endpoint accepts. With none registered, any is accepted."""
        self.clients.setdefault(client_id, set()).add(client_secret)

    def issue_oauth_code(
        self,
        user_id: str,
        account_id: str,
        *,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        scope: str = "me:read notifications:write boards:read",
        code_challenge: str | None = None,
    ) -> str:
        """An authorization code, valid 10 minutes and once, as monday's consent page gives."""
        code = secrets.token_urlsafe(16)
        self._codes[code] = OAuthCode(
            str(user_id),
            str(account_id),
            client_id,
            redirect_uri,
            scope,
            time.time() + 600,
            code_challenge,
        )
        return code

    def take_code(self, code: str) -> OAuthCode | None:
        found = self._codes.pop(code, None)
        if found is None or found.expires_at < time.time():
            return None
        return found

    def grant_tokens(self, user_id: str, account_id: str, scope: str) -> dict[str, Any]:
        """Mint an app OAuth token (and a rotating refresh token when enabled)."""
        access = f"fake-oauth-{secrets.token_urlsafe(24)}"
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "scope": scope}
        if self.issue_refresh_tokens:
            self.add_token(
                access, user_id, account_id, "oauth", expires_in=self.access_token_lifetime_seconds
            )
            refresh = f"fake-refresh-{secrets.token_urlsafe(24)}"
            self._refresh_tokens[refresh] = (user_id, account_id, scope)
            answer["refresh_token"] = refresh
            answer["expires_in"] = self.access_token_lifetime_seconds
        else:
            self.add_token(access, user_id, account_id, "oauth")
        return answer

    def take_refresh_token(self, refresh_token: str) -> tuple[str, str, str] | None:
        """Refresh tokens rotate: each one works once."""
        return self._refresh_tokens.pop(refresh_token, None)

    def fail_next(self, kind: str, count: int = 1, **params: Any) -> None:
        """Make the next `count` API requests fail as `kind` (see FAILURE_KINDS).

        `execute-then-hang` and the like may be spelled with hyphens.
        """
        kind = kind.replace("-", "_")
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; use one of {FAILURE_KINDS}")
        if count < 1:
            raise ValueError("count must be at least 1")
        self.failures.append(Failure(kind, count, dict(params)))

    def reset(self) -> None:
        """Forget what was received and delivered, queued failures and budgets.

        Users, tokens and registered clients stay, so a reset between demos keeps the dev
        accounts working.
        """
        self.requests.clear()
        self.notifications.clear()
        self.failures.clear()
        self._windows.clear()
        self._complexity_used.clear()
        self.idempotency.clear()
        self.minute_budget = None
        self.in_flight = 0

    def new_windows(self) -> None:
        """Start every account's minute and complexity windows afresh (the benchmarks give
        each target its own window: monday's 5,000 calls a minute are per account)."""
        self._windows.clear()
        self._complexity_used.clear()

    # -- used while serving ---------------------------------------------------------------
    def lookup(self, token: str | None) -> FakeToken | None:
        if not token:
            return None
        found = self.tokens.get(token)
        if found is None:
            return None
        if found.expires_at is not None and found.expires_at < time.time():
            return None
        return found

    def take_failure(self) -> Failure | None:
        if not self.failures:
            return None
        failure = self.failures[0]
        failure.remaining -= 1
        if failure.remaining <= 0:
            self.failures.popleft()
        return Failure(failure.kind, 1, failure.params)

    def _window(self, table: dict[str, _Window], account_id: str) -> _Window:
        now = self.clock()
        window = table.get(account_id)
        if window is None or now - window.started >= self.minute_window_seconds:
            window = _Window(started=now)
            table[account_id] = window
        return window

    def window_reset_in(self, account_id: str) -> int:
        window = self._windows.get(account_id)
        if window is None:
            return math.ceil(self.minute_window_seconds)
        left = self.minute_window_seconds - (self.clock() - window.started)
        return max(int(left + 0.999), 0)

    def charge_minute(self, account_id: str) -> bool:
        """Count one call; False when the per-minute budget is exceeded."""
        window = self._window(self._windows, account_id)
        window.count += 1
        return self.minute_budget is None or window.count <= self.minute_budget

    def minute_remaining(self, account_id: str) -> int:
        quota = self.minute_quota
        window = self._windows.get(account_id)
        used = window.count if window else 0
        return max(quota - used, 0)

    @property
    def minute_quota(self) -> int:
        return self.minute_budget if self.minute_budget is not None else 5000

    def charge_complexity(self, account_id: str, cost: int) -> tuple[int, int]:
        """(before, after) of the account's complexity budget for this window."""
        window = self._window(self._complexity_used, account_id)
        before = self.complexity_budget - window.count
        window.count += cost
        return before, self.complexity_budget - window.count

    def complexity_left(self, account_id: str) -> int:
        window = self._complexity_used.get(account_id)
        return self.complexity_budget - (window.count if window else 0)

    def deliver(
        self,
        *,
        token: FakeToken,
        recipient: str,
        target_id: str,
        target_type: str,
        text: str,
        request_id: str,
    ) -> DeliveredNotification:
        owner = self.users.get(token.user_id)
        from_app = token.kind in APP_TOKEN_KINDS
        shown = "the app" if from_app else (owner.name if owner else f"user {token.user_id}")
        notification = DeliveredNotification(
            monday_id=str(self._next_notification_id),
            recipient_user_id=recipient,
            target_id=target_id,
            target_type=target_type,
            text=text,
            account_id=token.account_id,
            token_kind=token.kind,
            token_owner_user_id=token.user_id,
            from_app=from_app,
            shown_from=shown,
            request_id=request_id,
            at=utc_now(),
        )
        self._next_notification_id += 1
        self.notifications.append(notification)
        return notification

    def bell(self, user_id: str) -> list[DeliveredNotification]:
        """What one user would see in their bell, oldest first."""
        return [n for n in self.notifications if n.recipient_user_id == str(user_id)]

    def requests_to(self, path_suffix: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path.endswith(path_suffix)]


FAKE_MONDAY = web.AppKey("fake_monday", FakeMonday)


def seed_dev_users(fake: FakeMonday, account_id: str = DEV_ACCOUNT_ID) -> None:
    """Add the dev users of account 1001, each one's fake personal API key and the fake
    short-lived token of their automations."""
    fake.add_account(account_id, "Dev Account", "dev-account")
    for user_id, name, email in DEV_USERS:
        fake.add_user(user_id, account_id, name, email)
        fake.add_token(dev_personal_key(user_id), user_id, account_id, "personal")
        fake.add_token(dev_short_lived_token(user_id), user_id, account_id, "short_lived")
