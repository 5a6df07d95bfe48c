"""Every row of contract §5, as a table: inputs → decision or refusal code."""

from __future__ import annotations

from typing import Any

import pytest

from server.sender import (
    Caller,
    ConnectedCredentials,
    InstallationFacts,
    SenderRefused,
    SenderRequest,
    decide_sender,
)

INSTALLER = "11"
MEMBER = "12"


def facts(policy: str = "app_then_installer", *, installed: bool = True, known: bool = True) -> Any:
    return InstallationFacts(
        known=known,
        installed=installed,
        installer_user_id=INSTALLER,
        sender_policy=policy,  # type: ignore[arg-type]
    )


def creds(*oauth: str, api_key: bool = False, short_lived: bool = False) -> ConnectedCredentials:
    return ConnectedCredentials(
        oauth_user_ids=frozenset(oauth), installer_api_key=api_key, short_lived_token=short_lived
    )


MEMBER_CALLER = Caller(MEMBER)
GUEST = Caller(MEMBER, is_guest=True)
VIEWER = Caller(MEMBER, is_view_only=True)

# (case, caller, installation, credentials, request, expected (sent_as, transport, owner) | code)
CASES: list[tuple[str, Caller, Any, ConnectedCredentials, SenderRequest, Any]] = [
    (
        "view-only may not send",
        VIEWER,
        facts(),
        creds(MEMBER, api_key=True),
        SenderRequest(),
        "FORBIDDEN",
    ),
    (
        "uninstalled may not send",
        MEMBER_CALLER,
        facts(installed=False),
        creds(MEMBER),
        SenderRequest(),
        "APP_NOT_INSTALLED",
    ),
    (
        "caller's own oauth first",
        MEMBER_CALLER,
        facts(),
        creds(MEMBER, INSTALLER, api_key=True),
        SenderRequest(),
        ("app", "server", MEMBER),
    ),
    (
        "installer's oauth when caller has none",
        MEMBER_CALLER,
        facts(),
        creds(INSTALLER, api_key=True),
        SenderRequest(),
        ("app", "server", INSTALLER),
    ),
    (
        "seamless when no oauth and relay capable",
        MEMBER_CALLER,
        facts(),
        creds(api_key=True),
        SenderRequest(relay_capable=True),
        ("app", "seamless", MEMBER),
    ),
    (
        "app_then_installer falls back to api key",
        MEMBER_CALLER,
        facts(),
        creds(api_key=True),
        SenderRequest(),
        ("installer", "server", INSTALLER),
    ),
    (
        "policy app: no fallback to api key",
        MEMBER_CALLER,
        facts("app"),
        creds(api_key=True),
        SenderRequest(),
        "NO_CREDENTIAL",
    ),
    (
        "policy app: seamless allowed",
        MEMBER_CALLER,
        facts("app"),
        creds(api_key=True),
        SenderRequest(relay_capable=True),
        ("app", "seamless", MEMBER),
    ),
    (
        "policy installer: api key even with oauth",
        MEMBER_CALLER,
        facts("installer"),
        creds(MEMBER, api_key=True),
        SenderRequest(),
        ("installer", "server", INSTALLER),
    ),
    (
        "policy installer: no key, no fallback to app",
        MEMBER_CALLER,
        facts("installer"),
        creds(MEMBER),
        SenderRequest(relay_capable=True),
        "NO_CREDENTIAL",
    ),
    (
        "hint installer refused by policy app",
        MEMBER_CALLER,
        facts("app"),
        creds(api_key=True),
        SenderRequest(send_as="installer"),
        "SENDER_NOT_ALLOWED",
    ),
    (
        "hint app refused by policy installer",
        MEMBER_CALLER,
        facts("installer"),
        creds(MEMBER),
        SenderRequest(send_as="app"),
        "SENDER_NOT_ALLOWED",
    ),
    (
        "hint installer honoured under app_then_installer",
        MEMBER_CALLER,
        facts(),
        creds(MEMBER, api_key=True),
        SenderRequest(send_as="installer"),
        ("installer", "server", INSTALLER),
    ),
    (
        "hint app never falls back to installer",
        MEMBER_CALLER,
        facts(),
        creds(api_key=True),
        SenderRequest(send_as="app"),
        "NO_CREDENTIAL",
    ),
    (
        "hint installer never falls back to app",
        MEMBER_CALLER,
        facts(),
        creds(MEMBER),
        SenderRequest(send_as="installer"),
        "NO_CREDENTIAL",
    ),
    (
        "guest may not ask for installer",
        GUEST,
        facts(),
        creds(api_key=True),
        SenderRequest(send_as="installer"),
        "SENDER_NOT_ALLOWED",
    ),
    (
        "guest never falls back to installer",
        GUEST,
        facts(),
        creds(api_key=True),
        SenderRequest(),
        "NO_CREDENTIAL",
    ),
    (
        "guest under policy installer",
        GUEST,
        facts("installer"),
        creds(api_key=True),
        SenderRequest(),
        "NO_CREDENTIAL",
    ),
    (
        "guest may send as the app",
        GUEST,
        facts(),
        creds(INSTALLER),
        SenderRequest(),
        ("app", "server", INSTALLER),
    ),
    (
        "automation short-lived token",
        Caller(MEMBER),
        facts(),
        creds(short_lived=True),
        SenderRequest(),
        ("app", "server", "short_lived"),
    ),
    (
        "automation under policy installer, a key connected",
        Caller(MEMBER),
        facts("installer"),
        creds(INSTALLER, api_key=True, short_lived=True),
        SenderRequest(),
        "NO_CREDENTIAL",
    ),
    (
        "automation under policy app",
        Caller(MEMBER),
        facts("app"),
        creds(short_lived=True),
        SenderRequest(),
        ("app", "server", "short_lived"),
    ),
    ("nothing connected", MEMBER_CALLER, facts(), creds(), SenderRequest(), "NO_CREDENTIAL"),
    (
        "unknown installation: seamless still works",
        MEMBER_CALLER,
        InstallationFacts(False, False, None),
        creds(),
        SenderRequest(relay_capable=True),
        ("app", "seamless", MEMBER),
    ),
    (
        "unknown installation: no installer to borrow",
        MEMBER_CALLER,
        InstallationFacts(False, False, None),
        creds(api_key=True),
        SenderRequest(),
        "NO_CREDENTIAL",
    ),
]


@pytest.mark.parametrize(
    ("caller", "installation", "credentials", "request_", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_sender_decision_table(
    caller: Caller,
    installation: InstallationFacts,
    credentials: ConnectedCredentials,
    request_: SenderRequest,
    expected: Any,
) -> None:
    if isinstance(expected, str):
        with pytest.raises(SenderRefused) as refused:
            decide_sender(caller, installation, credentials, request_)
        assert refused.value.code == expected
        return
    decision = decide_sender(caller, installation, credentials, request_)
    assert (decision.sent_as, decision.transport, decision.credential_owner) == expected
    assert decision.reason


def test_no_credential_message_says_what_to_connect() -> None:
    with pytest.raises(SenderRefused) as refused:
        decide_sender(MEMBER_CALLER, facts(), creds(), SenderRequest())
    assert refused.value.status == 409
    assert "Connect the app" in refused.value.message
    assert "API key" in refused.value.message


def test_no_credential_for_app_only_does_not_suggest_api_key() -> None:
    with pytest.raises(SenderRefused) as refused:
        decide_sender(MEMBER_CALLER, facts("app"), creds(), SenderRequest())
    assert "API key" not in refused.value.message


def test_a_guest_under_the_installer_policy_hears_that_the_policy_decides() -> None:
    """Nothing a guest connects would help: the message names the policy and who can change
    it (it said only "guests may only send as the app")."""
    with pytest.raises(SenderRefused) as refused:
        decide_sender(GUEST, facts("installer"), creds(api_key=True), SenderRequest())
    assert (refused.value.status, refused.value.code) == (409, "NO_CREDENTIAL")
    assert "policy (installer)" in refused.value.message
    assert "an admin can allow the app" in refused.value.message


def test_refusal_statuses() -> None:
    statuses = {}
    for code, args in {
        "FORBIDDEN": (VIEWER, facts(), creds(), SenderRequest()),
        "APP_NOT_INSTALLED": (MEMBER_CALLER, facts(installed=False), creds(), SenderRequest()),
        "SENDER_NOT_ALLOWED": (
            MEMBER_CALLER,
            facts("app"),
            creds(),
            SenderRequest(send_as="installer"),
        ),
    }.items():
        with pytest.raises(SenderRefused) as refused:
            decide_sender(*args)
        statuses[code] = refused.value.status
    assert statuses == {"FORBIDDEN": 403, "APP_NOT_INSTALLED": 409, "SENDER_NOT_ALLOWED": 403}
