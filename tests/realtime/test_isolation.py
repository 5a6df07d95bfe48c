"""Every event obeys §7's access rules: the caller's account, a non-admin only their rows."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from server.appkeys import SERVICES
from server.notifications.model import AuditEntry, NewNotification
from tests.conftest import INSTALLER
from tests.notifications.helpers import MEMBER, OTHER_ACCOUNT
from tests.realtime.test_protocol import open_wire, send
from tests.realtime.wire import Wire

Client = TestClient[Any, Any]
THIRD = "13"


def ids_in(wire: Wire, event: str) -> set[int]:
    out: set[int] = set()
    for m in wire.seen:
        if m.get("event") == event:
            for item in m.get("data") or []:
                out.add(item if isinstance(item, int) else int(item["id"]))
    return out


async def test_members_see_only_their_rows_and_accounts_are_apart(rt: Client, mint: Any) -> None:
    admin = mint(user=INSTALLER, admin=True)
    member = await open_wire(rt)
    await member.auth(mint(user=MEMBER))
    await member.subscribe("m")
    other_admin = await open_wire(rt)
    await other_admin.auth(mint(account=OTHER_ACCOUNT, user="99", admin=True))
    await other_admin.subscribe("o")
    own_admin = await open_wire(rt)
    await own_admin.auth(admin)
    await own_admin.subscribe("a")

    hidden = await send(rt, admin, recipient=THIRD, message="for someone else")
    mine = await send(rt, admin, recipient=MEMBER, message="for me")
    # FIFO per connection: the member's create for `mine` comes after `hidden` was handled.
    got = await member.until(lambda m: m.get("event") == "create" and m["data"][0]["id"] == mine)
    assert got["data"][0]["message"] == "for me"
    await own_admin.until(lambda m: m.get("event") == "create" and m["data"][0]["id"] == mine)
    assert {hidden, mine} <= ids_in(own_admin, "create")
    assert hidden not in ids_in(member, "create") | ids_in(member, "update")

    # Deletes too: the admin deletes both; the member hears only of their own row.
    for row_id in (hidden, mine):
        r = await rt.delete(f"/notifications/{row_id}", headers={"Authorization": admin})
        assert r.status == 204
    await member.until(lambda m: m.get("event") == "delete" and m["data"] == [mine])
    await own_admin.until(lambda m: m.get("event") == "delete" and mine in m["data"])
    assert hidden not in ids_in(member, "delete")
    assert ids_in(own_admin, "delete") == {hidden, mine}

    # The other account heard nothing: a write of its own arrives, and only it.
    theirs = await send_other_account(rt)
    await other_admin.until(lambda m: m.get("event") == "create")
    assert ids_in(other_admin, "create") == {theirs}
    assert not ids_in(other_admin, "delete") and not ids_in(other_admin, "update") - {theirs}
    assert next(m for m in other_admin.seen if m.get("event") == "init")["data"] == []


async def send_other_account(rt: Client) -> int:
    """A row in the other account, written by the app's own store as a send writes it (that
    account has no installation here, so an API send would be refused)."""
    row = NewNotification(
        recipient="99",
        message="theirs",
        collection="Project",
        item="1",
        subject=None,
        sent_as="user",
        transport="seamless",
        credential_owner="99",
    )
    audit = AuditEntry(OTHER_ACCOUNT, "99", "api", None, None, "sent", "test")
    stored = await rt.app[SERVICES].ledger.store.insert(
        account_id=OTHER_ACCOUNT, sender="99", rows=[row], audits=[audit], idempotency_key=None
    )
    return stored[0].id
