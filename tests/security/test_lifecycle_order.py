"""Contract §10: lifecycle events apply in monday's order (`data.timestamp`).

An event older than the last one applied for the account is recorded (`applied: false`)
and changes nothing: a delayed `uninstall` arriving after a reinstall must not uninstall.
An event without a timestamp applies only while no timestamped event has been applied.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import INSTALLER
from tests.installations.helpers import event, lifecycle_token, seed_credential
from tests.security.conftest import MEMBER, table

T1 = "2026-07-01T10:00:00.000+00:00"
T2 = "2026-07-02T10:00:00.000+00:00"
T3 = "2026-07-03T10:00:00.000+00:00"


async def post(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        "/monday/lifecycle", json=body, headers={"Authorization": lifecycle_token()}
    )
    assert response.status == 200, await response.text()
    data: dict[str, Any] = (await response.json())["data"]
    return data


async def installation(client: Any) -> dict[str, Any]:
    [row] = await table(client, "installations")
    return row


async def test_a_late_uninstall_does_not_undo_a_newer_reinstall(app: Any) -> None:
    await post(app, event("install", timestamp=T1))
    await post(app, event("install", user=MEMBER, timestamp=T3))  # reinstalled by 12
    await seed_credential(app, user=MEMBER, kind="api_key", secret="key-of-the-new-installer")
    late = await post(app, event("uninstall", timestamp=T2))  # monday's delayed delivery
    assert (late["replayed"], late["applied"]) == (False, False)
    row = await installation(app)
    assert (row["installed"], row["installer_user_id"], row["last_event_type"]) == (
        True,
        MEMBER,
        "install",
    )
    assert [c["user_id"] for c in await table(app, "credentials")] == [MEMBER]
    recorded = [(e["type"], e["applied"]) for e in await table(app, "lifecycle_events")]
    assert recorded == [("install", True), ("install", True), ("uninstall", False)]


async def test_an_older_subscription_event_changes_nothing(app: Any) -> None:
    await post(app, event("install", timestamp=T1))
    await post(app, event("app_subscription_changed", timestamp=T3, subscription={"plan": "new"}))
    old = event("app_subscription_changed", timestamp=T2, subscription={"plan": "old"})
    assert (await post(app, old))["applied"] is False
    assert (await installation(app))["subscription"] == {"plan": "new"}


async def test_offsets_are_compared_as_instants(app: Any) -> None:
    await post(app, event("install", timestamp="2026-07-01T23:30:00Z"))
    # 01:00 at +02:00 is 23:00 UTC the day before: older, though it reads later.
    older = await post(app, event("uninstall", timestamp="2026-07-02T01:00:00+02:00"))
    assert older["applied"] is False
    assert (await installation(app))["installed"] is True
    newer = await post(app, event("uninstall", timestamp="2026-07-02T01:31:00+02:00"))
    assert newer["applied"] is True
    assert (await installation(app))["installed"] is False


async def test_an_event_of_the_same_instant_applies(app: Any) -> None:
    await post(app, event("install", timestamp=T2))
    assert (await post(app, event("uninstall", timestamp=T2)))["applied"] is True
    assert (await installation(app))["installed"] is False


async def test_an_event_without_timestamp_applies_only_before_any_ordered_one(app: Any) -> None:
    first = await post(app, event("install", timestamp=None))
    assert first["applied"] is True
    assert (await installation(app))["installer_user_id"] == INSTALLER
    await post(app, event("install", timestamp=T1))
    # Now the account has an order; an event that cannot be placed in it changes nothing.
    unplaced = await post(app, event("uninstall", timestamp=None))
    assert unplaced["applied"] is False
    assert (await installation(app))["installed"] is True


@pytest.mark.parametrize(
    "bad",
    [
        "yesterday",
        "",
        1751364000,
        "2026-13-01T00:00:00Z",
        # Readable, but before the year 1 or after 9999 once in UTC.
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
    ],
)
async def test_an_unreadable_timestamp_is_400_and_not_recorded(app: Any, bad: Any) -> None:
    response = await app.post(
        "/monday/lifecycle",
        json=event("install", timestamp=bad),
        headers={"Authorization": lifecycle_token()},
    )
    assert response.status == 400
    error = (await response.json())["errors"][0]
    assert error["extensions"]["code"] == "INVALID_PAYLOAD"
    assert error["extensions"]["field"] == "data.timestamp"
    assert await table(app, "lifecycle_events") == []
    assert await table(app, "installations") == []


async def test_racing_deliveries_end_in_the_newest_state(app: Any) -> None:
    """Both arrive at once; whichever is applied first, the newer one decides the state."""
    await post(app, event("install", timestamp=T1))
    for round_ in range(3):
        stamp = f"2026-08-0{round_ + 1}T00:00:0"
        reinstall = event("install", user=MEMBER, timestamp=stamp + "2Z")
        uninstall = event("uninstall", timestamp=stamp + "1Z")
        answers = await asyncio.gather(post(app, reinstall), post(app, uninstall))
        assert answers[0]["applied"] is True
        row = await installation(app)
        assert (row["installed"], row["installer_user_id"]) == (True, MEMBER), round_


async def test_a_newer_subscription_event_does_not_make_an_uninstall_stale(app: Any) -> None:
    """monday's order: install, uninstall, subscription cancelled; the last arrives first."""
    await post(app, event("install", timestamp=T1))
    await seed_credential(app, user=INSTALLER, kind="api_key", secret="key-of-the-installer")
    cancelled = event("app_subscription_cancelled", timestamp=T3, subscription={"plan": "none"})
    await post(app, cancelled)
    uninstall = await post(app, event("uninstall", timestamp=T2, account_tier="free"))
    assert uninstall["applied"] is True
    row = await installation(app)
    assert row["installed"] is False
    assert await table(app, "credentials") == []
    # The uninstall's own account facts are older than the subscription event's: not applied.
    assert (row["subscription"], row["account_tier"], row["last_event_type"]) == (
        {"plan": "none"},
        "pro",
        "app_subscription_cancelled",
    )


async def test_a_reinstall_that_arrives_after_a_newer_subscription_event_applies(app: Any) -> None:
    """A reinstall by another admin must not be lost: the old installer's key stays unused."""
    await post(app, event("install", timestamp=T1))
    await seed_credential(app, user=INSTALLER, kind="api_key", secret="key-of-the-first-installer")
    await post(app, event("app_subscription_changed", timestamp=T3))
    reinstall = await post(app, event("install", user=MEMBER, timestamp=T2))
    assert reinstall["applied"] is True
    row = await installation(app)
    assert (row["installed"], row["installer_user_id"]) == (True, MEMBER)
    assert await table(app, "credentials") == []
    recorded = [(e["type"], e["applied"]) for e in await table(app, "lifecycle_events")]
    assert recorded == [
        ("install", True),
        ("app_subscription_changed", True),
        ("install", True),
    ]


async def test_an_uninstall_older_than_the_last_install_stays_stale_among_other_events(
    app: Any,
) -> None:
    await post(app, event("install", timestamp=T1))
    await post(app, event("install", user=MEMBER, timestamp=T3))
    await post(app, event("app_subscription_renewed", timestamp=T3))
    late = await post(app, event("uninstall", timestamp=T2))
    assert late["applied"] is False
    assert (await installation(app))["installed"] is True


async def test_an_uninstall_that_arrives_first_still_names_the_installer(app: Any) -> None:
    """monday's order: install, subscription event, uninstall; the uninstall arrives first.
    The state is monday's order's: uninstalled, installed by 11 (the stale install cannot
    say so any more)."""
    await post(app, event("uninstall", timestamp=T3))
    await post(app, event("install", timestamp=T1))
    await post(app, event("app_subscription_changed", timestamp=T2))
    row = await installation(app)
    assert (row["installed"], row["installer_user_id"]) == (False, INSTALLER)
