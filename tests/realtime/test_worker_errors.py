"""A read that fails costs its connection that one change, not the changes after it.

A connection's worker re-reads every change for its subscriptions. When a read fails in the
database (here: an id no database integer holds, published on the bus as another instance's
NOTIFY could carry it), the worker logs it and goes on; before, any error other than the
API's own ended the worker, and the connection heard nothing more until its queue filled and
it was closed as "too far behind". Over a real server, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from server.notifications.changes import RowChange
from server.realtime.runtime import REALTIME
from tests.conftest import ACCOUNT, INSTALLER
from tests.notifications.helpers import MEMBER
from tests.realtime.test_protocol import open_wire, send

Client = TestClient[Any, Any]


async def test_a_failed_read_does_not_stop_the_changes_after_it(rt: Client, mint: Any) -> None:
    wire = await open_wire(rt)
    await wire.auth(mint(user=MEMBER))
    await wire.subscribe("s", query={"fields": ["id"]}, event="create")

    rt.app[REALTIME].bus.publish(RowChange("create", (2**70,), ACCOUNT))
    row_id = await send(rt, mint(user=INSTALLER, admin=True), message="after")
    created = await wire.event("s", "create")
    assert created["data"] == [{"id": row_id}]
