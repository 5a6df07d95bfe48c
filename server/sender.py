"""Who a notification is sent as (contract §5): one pure function and its typed inputs.

The decision never calls monday and never reads the database: the caller gathers the
facts (installation, connected credentials, relay capability) and this module applies
the rules, so every row of the rules is one table-driven test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from server.errors import ApiError

SenderPolicy = Literal["app", "installer", "app_then_installer"]
SendAs = Literal["app", "installer"]
Transport = Literal["server", "seamless"]
CredentialKind = Literal["oauth", "api_key", "short_lived", "seamless"]

POLICIES: tuple[SenderPolicy, ...] = ("app", "installer", "app_then_installer")
DEFAULT_POLICY: SenderPolicy = "app_then_installer"
SHORT_LIVED = "short_lived"


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified caller, reduced to what the decision needs."""

    user_id: str
    is_view_only: bool = False
    is_guest: bool = False


@dataclass(frozen=True, slots=True)
class InstallationFacts:
    """`known` is False when no lifecycle event (nor a first credential) recorded the account."""

    known: bool
    installed: bool
    installer_user_id: str | None
    sender_policy: SenderPolicy = DEFAULT_POLICY


@dataclass(frozen=True, slots=True)
class ConnectedCredentials:
    """Usable credentials only (a `needs_reconnect` one is left out by the caller)."""

    oauth_user_ids: frozenset[str] = field(default_factory=frozenset)
    installer_api_key: bool = False
    short_lived_token: bool = False


@dataclass(frozen=True, slots=True)
class SenderRequest:
    send_as: SendAs | None = None
    relay_capable: bool = False


@dataclass(frozen=True, slots=True)
class SenderDecision:
    """Where the notification goes out from; stored on the ledger row and in the audit log."""

    sent_as: SendAs
    transport: Transport
    credential_owner: str
    credential_kind: CredentialKind
    reason: str


class SenderRefused(ApiError):
    """The request cannot be sent as anyone the rules allow; `reason` goes to the audit log."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)


def decide_sender(
    caller: Caller,
    installation: InstallationFacts,
    credentials: ConnectedCredentials,
    request: SenderRequest,
) -> SenderDecision:
    """Apply contract §5 in order; raise `SenderRefused` with the contract's code otherwise."""
    if caller.is_view_only:
        raise SenderRefused(403, "FORBIDDEN", "View-only users cannot send notifications.")
    if installation.known and not installation.installed:
        raise SenderRefused(
            409, "APP_NOT_INSTALLED", "The app is not installed on this account: install it first."
        )
    policy = installation.sender_policy
    allowed = _allowed_senders(policy)
    if request.send_as is not None and request.send_as not in allowed:
        raise SenderRefused(
            403,
            "SENDER_NOT_ALLOWED",
            f"The account's sender policy ({policy}) does not allow "
            f"sending as the {request.send_as}.",
        )
    if credentials.short_lived_token and "app" not in allowed:
        # An automation sends with its own short-lived token only, which is the app (contract
        # §10): a policy without the app leaves it nothing usable (§5 step 7), whatever else
        # is connected, and connecting more would not help: the message says what would.
        raise SenderRefused(
            409,
            "NO_CREDENTIAL",
            f"The account's sender policy ({policy}) does not allow sending as the app, and an "
            "automation can only send as the app (with its own short-lived token): an admin "
            "can allow it in Settings (policy app, or app then installer).",
        )
    if request.send_as == "installer" and caller.is_guest:
        raise SenderRefused(403, "SENDER_NOT_ALLOWED", "Guests cannot send as the installing user.")

    wanted = allowed if request.send_as is None else (request.send_as,)
    for sender in wanted:
        if sender == "app":
            decision = _as_app(caller, installation, credentials, request)
        else:
            decision = _as_installer(caller, installation, credentials)
        if decision is not None:
            return decision
    raise SenderRefused(409, "NO_CREDENTIAL", _what_to_connect(wanted, caller, installation))


def policy_allows(policy: SenderPolicy, sent_as: str) -> bool:
    """Whether `policy` lets a notification go out as `sent_as` (checked again by delivery
    before every attempt: an admin's change applies to rows decided before it)."""
    return sent_as in _allowed_senders(policy)


@dataclass(frozen=True, slots=True)
class CredentialRefusal:
    """Why delivery has no credential to send a row with now (a code of contract §8 and the
    message the row's `last_error` carries)."""

    code: str
    message: str


def _allowed_senders(policy: SenderPolicy) -> tuple[SendAs, ...]:
    if policy == "app":
        return ("app",)
    if policy == "installer":
        return ("installer",)
    return ("app", "installer")


def _as_app(
    caller: Caller,
    installation: InstallationFacts,
    credentials: ConnectedCredentials,
    request: SenderRequest,
) -> SenderDecision | None:
    # An automation's own short-lived token is the app acting for that very recipe.
    if credentials.short_lived_token:
        return SenderDecision(
            "app", "server", SHORT_LIVED, "short_lived", "automation request: its short-lived token"
        )
    if caller.user_id in credentials.oauth_user_ids:
        return SenderDecision(
            "app", "server", caller.user_id, "oauth", "the caller's own app OAuth token"
        )
    installer = installation.installer_user_id
    if installer is not None and installer in credentials.oauth_user_ids:
        return SenderDecision(
            "app", "server", installer, "oauth", "the installing user's app OAuth token"
        )
    if request.relay_capable:
        return SenderDecision(
            "app",
            "seamless",
            caller.user_id,
            "seamless",
            "no app OAuth token; the caller's view relays through monday's seamless auth",
        )
    return None


def _as_installer(
    caller: Caller, installation: InstallationFacts, credentials: ConnectedCredentials
) -> SenderDecision | None:
    # Guests never borrow the installer's identity, even through a policy fallback.
    if caller.is_guest or installation.installer_user_id is None:
        return None
    if not credentials.installer_api_key:
        return None
    return SenderDecision(
        "installer",
        "server",
        installation.installer_user_id,
        "api_key",
        "the installing user's personal API key",
    )


def _what_to_connect(
    wanted: tuple[SendAs, ...], caller: Caller, installation: InstallationFacts
) -> str:
    steps: list[str] = []
    if "app" in wanted:
        steps.append("connect the app in Settings → Connect the app (OAuth)")
    if "installer" in wanted and not caller.is_guest:
        who = "the installing user" if installation.installer_user_id else "an admin"
        steps.append(f"have {who} add a personal API key in Settings → API key")
    if not steps:
        # A guest under the `installer` policy: nothing a guest connects would help.
        return (
            f"Nothing can send this notification: the account's sender policy "
            f"({installation.sender_policy}) allows only the installing user, and guests may "
            "only send as the app: an admin can allow the app in Settings."
        )
    return "No credential can send this notification: " + ", or ".join(steps) + "."
