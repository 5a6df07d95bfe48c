"""The records the fake monday keeps: users, tokens, received requests, delivered
notifications, queued failures and OAuth codes, plus the development users' fixed facts.

Plain values with no behaviour beyond their own shape; `fake_monday_state.FakeMonday`
holds and changes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

TokenKind = Literal["personal", "oauth", "short_lived", "seamless"]
TOKEN_KINDS: tuple[str, ...] = ("personal", "oauth", "short_lived", "seamless")
# Which tokens monday shows as "from the app". monday documents this for seamless auth and
# personal keys only; treating the app's OAuth and short-lived tokens as the app too is our
# assumption (monday-platform.md §5.3 marks it UNCONFIRMED).
APP_TOKEN_KINDS = frozenset({"oauth", "short_lived", "seamless"})

FAILURE_KINDS: tuple[str, ...] = (
    "rate_limit",
    "complexity",
    "legacy_complexity",
    "daily_limit",
    "concurrency",
    "server_error",
    "bad_gateway",
    "timeout",
    "unauthorized",
    "invalid_user",
    # monday ran the mutation, then: no answer within the client's timeout / an HTTP 500 /
    # the connection dropped. Only an Idempotency-Key retry can learn what happened.
    "execute_then_hang",
    "execute_then_500",
    "execute_then_connection_reset",
)

DEV_ACCOUNT_ID = "1001"
# The development users of account 1001. Their personal API keys are deliberately fake strings:
# they only ever open the fake monday. User 11 is the installer (tests' INSTALLER).
DEV_USERS: tuple[tuple[str, str, str], ...] = (
    ("11", "Ada Admin", "ada.admin@example.com"),
    ("12", "Max Member", "max.member@example.com"),
    ("13", "Gus Guest", "gus.guest@example.com"),
    ("14", "Vera Viewer", "vera.viewer@example.com"),
)


def dev_personal_key(user_id: str) -> str:
    """The fake personal API key of a dev user, e.g. `dev-personal-key-user-11`."""
    return f"dev-personal-key-user-{user_id}"


def dev_short_lived_token(user_id: str) -> str:
    """The fake short-lived token of a dev user's automations, e.g.
    `dev-short-lived-token-user-12`: what `mint-token --dev --kind integration` puts in
    `shortLivedToken`, so an action run locally reaches the fake monday as the app. (monday's
    own expire after 5 minutes; these do not, as the personal keys do not.)"""
    return f"dev-short-lived-token-user-{user_id}"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class FakeUser:
    id: str
    name: str
    email: str
    account_id: str
    # IANA zone monday reports as `time_zone_identifier` (None: monday gives none).
    time_zone: str | None = None


@dataclass
class FakeToken:
    token: str
    user_id: str
    account_id: str
    kind: str
    expires_at: float | None = None  # wall-clock epoch seconds; None = never


@dataclass
class ReceivedRequest:
    """One request as the fake monday received it (header names are lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw_body: bytes
    at: datetime
    request_id: str
    token_kind: str | None = None
    token_user_id: str | None = None
    # The fake's clock (`FakeMonday.clock`, the one its rate windows run on) when the request
    # was counted against its account's budget (refused or not); None if it never was. Tests
    # and benchmarks measure the achieved call rate with it.
    charged_at: float | None = None

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def api_version(self) -> str | None:
        return self.headers.get("api-version")


@dataclass(frozen=True)
class DeliveredNotification:
    """A notification the fake monday "put in a bell"."""

    monday_id: str
    recipient_user_id: str
    target_id: str
    target_type: str
    text: str
    account_id: str
    token_kind: str
    token_owner_user_id: str
    from_app: bool
    shown_from: str  # "the app" or the token owner's name
    request_id: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


@dataclass
class Failure:
    kind: str
    remaining: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class OAuthCode:
    user_id: str
    account_id: str
    client_id: str | None
    redirect_uri: str | None
    scope: str
    expires_at: float
    code_challenge: str | None = None  # PKCE (S256): the exchange must bring its verifier
