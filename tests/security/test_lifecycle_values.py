"""A lifecycle event's informational facts never cost the event (contract §4, §8).

monday's body carries `account_max_users`; a value no column holds (PostgreSQL's INTEGER is
32 bits, SQLite's 64) must not turn an `uninstall` into a 500 that keeps every credential.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import INSTALLER
from tests.installations.helpers import event, lifecycle_token, seed_credential
from tests.security.conftest import table


@pytest.mark.parametrize("max_users", [10**20, 2**31, -1])
async def test_an_uninstall_with_an_unstorable_user_count_still_applies(
    app: Any, max_users: int
) -> None:
    await app.post(
        "/monday/lifecycle",
        json=event("install", timestamp="2026-07-01T10:00:00Z"),
        headers={"Authorization": lifecycle_token()},
    )
    await seed_credential(app, user=INSTALLER, kind="api_key", secret="key-of-the-installer")
    response = await app.post(
        "/monday/lifecycle",
        json=event("uninstall", timestamp="2026-07-02T10:00:00Z", account_max_users=max_users),
        headers={"Authorization": lifecycle_token()},
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["data"]["applied"] is True
    [row] = await table(app, "installations")
    assert (row["installed"], row["account_max_users"]) == (False, None)
    assert await table(app, "credentials") == []


async def test_a_storable_user_count_is_kept(app: Any) -> None:
    response = await app.post(
        "/monday/lifecycle",
        json=event("install", account_max_users=2**31 - 1),
        headers={"Authorization": lifecycle_token()},
    )
    assert response.status == 200
    [row] = await table(app, "installations")
    assert row["account_max_users"] == 2**31 - 1
