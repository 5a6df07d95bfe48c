"""Directus' realtime protocol on GET /websocket (contract §13), over a real server."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import WSCloseCode
from aiohttp.test_utils import TestClient

from server.realtime.runtime import REALTIME
from tests.conftest import ACCOUNT, INSTALLER
from tests.notifications.helpers import MEMBER, notification
from tests.realtime.wire import Wire, is_event, until

Client = TestClient[Any, Any]


async def open_wire(client: Client, **kwargs: Any) -> Wire:
    return Wire(await client.ws_connect("/websocket", **kwargs))


async def send(client: Client, token: str, **body: Any) -> int:
    r = await client.post(
        "/notifications", json=notification(**body), headers={"Authorization": token}
    )
    assert r.status == 200, await r.text()
    return int((await r.json())["data"]["id"])


async def test_no_auth_within_the_timeout_is_auth_failed_then_closed(rt: Client) -> None:
    wire = await open_wire(rt)
    code = await wire.closed()
    assert wire.seen == [
        {
            "type": "auth",
            "status": "error",
            "error": {"code": "AUTH_FAILED", "message": "No auth message arrived in time."},
        }
    ]
    assert code == WSCloseCode.POLICY_VIOLATION


async def test_first_message_must_be_auth(rt: Client) -> None:
    wire = await open_wire(rt)
    await wire.send({"type": "ping", "uid": "p"})
    await wire.closed()
    assert wire.seen[0]["error"]["code"] == "AUTH_FAILED"
    assert wire.seen[0]["uid"] == "p"


async def test_bad_token_is_auth_failed_without_echoing_it(rt: Client, mint: Any) -> None:
    wire = await open_wire(rt)
    forged = mint(secret="not-the-secret-0123456789abcdef0123456789")
    answer = await wire.auth(forged)
    assert answer["status"] == "error"
    assert answer["error"]["code"] == "AUTH_FAILED"
    assert forged not in json.dumps(answer)
    assert await wire.closed() == WSCloseCode.POLICY_VIOLATION


async def test_auth_ok_and_ping_pong(rt: Client, mint: Any) -> None:
    wire = await open_wire(rt)
    assert await wire.auth(mint(user=MEMBER)) == {"type": "auth", "status": "ok"}
    await wire.send({"type": "ping", "uid": "42"})
    assert await wire.until(lambda m: m["type"] == "pong") == {"type": "pong", "uid": "42"}


async def test_init_create_update_delete(rt: Client, mint: Any) -> None:
    admin = mint(user=INSTALLER, admin=True)
    first = await send(rt, admin, message="before")
    wire = await open_wire(rt)
    await wire.auth(mint(user=MEMBER))
    init = await wire.subscribe("s1", query={"fields": ["id", "message", "delivery_status"]})
    assert init["type"] == "subscription" and init["event"] == "init"
    assert [row["id"] for row in init["data"]] == [first]
    assert set(init["data"][0]) == {"id", "message", "delivery_status"}

    row_id = await send(rt, admin, message="live")
    created = await wire.event("s1", "create")
    assert [r["id"] for r in created["data"]] == [row_id]
    assert created["data"][0]["message"] == "live"
    # Delivery progress arrives as updates, until monday accepted it.
    sent = await wire.until(
        lambda m: (
            is_event("s1", "update")(m)
            and m["data"][0]["id"] == row_id
            and m["data"][0]["delivery_status"] == "sent"
        )
    )
    assert sent["data"][0]["message"] == "live"

    r = await rt.patch(
        f"/notifications/{row_id}", json={"status": "archived"}, headers={"Authorization": admin}
    )
    assert r.status == 200
    await wire.until(lambda m: is_event("s1", "update")(m) and m["data"][0].get("id") == row_id)
    r = await rt.delete(f"/notifications/{row_id}", headers={"Authorization": admin})
    assert r.status == 204
    deleted = await wire.event("s1", "delete")
    assert deleted["data"] == [row_id]


async def test_event_subscription_has_init_without_data(rt: Client, mint: Any) -> None:
    wire = await open_wire(rt)
    await wire.auth(mint(user=MEMBER))
    init = await wire.subscribe("c", event="create")
    assert init == {"type": "subscription", "event": "init", "uid": "c"}
    row_id = await send(rt, mint(user=INSTALLER, admin=True))
    created = await wire.event("c", "create")
    assert created["data"][0]["id"] == row_id
    # The next thing for "c" is another create, never an update (delivery progress).
    second = await send(rt, mint(user=INSTALLER, admin=True))
    nxt = await wire.until(lambda m: m.get("uid") == "c")
    assert nxt["event"] == "create" and nxt["data"][0]["id"] == second


async def test_filter_and_fields_as_strings_and_objects(rt: Client, mint: Any) -> None:
    admin = mint(user=INSTALLER, admin=True)
    wire = await open_wire(rt)
    await wire.auth(mint(user=MEMBER))
    flt = {"message": {"_eq": "wanted"}}
    await wire.subscribe("str", query={"fields": "id,message", "filter": json.dumps(flt)})
    await wire.subscribe("obj", query={"fields": ["id"], "filter": flt}, event="create")
    skipped = await send(rt, admin, message="other")
    wanted = await send(rt, admin, message="wanted")
    got = await wire.event("str", "create")
    assert got["data"] == [{"id": wanted, "message": "wanted"}]
    got = await wire.event("obj", "create")
    assert got["data"] == [{"id": wanted}]
    # The pipeline is FIFO per connection: "other" was handled (and sent nothing) before.
    assert not any(
        r.get("id") == skipped
        for m in wire.seen
        for r in m.get("data") or []
        if isinstance(r, dict)
    )


async def test_hidden_columns_and_bad_requests_are_refused_with_uid(rt: Client, mint: Any) -> None:
    wire = await open_wire(rt)
    await wire.auth(mint(user=MEMBER))
    refused = await wire.subscribe("h", query={"filter": {"lease_owner": {"_null": True}}})
    assert refused["status"] == "error" and refused["error"]["code"] == "INVALID_QUERY"
    refused = await wire.subscribe("f", query={"fields": "id,lease_owner"})
    assert refused["error"]["code"] == "INVALID_QUERY"
    refused = await wire.subscribe("a", query={"aggregate": {"count": "*"}})
    assert refused["error"]["code"] == "INVALID_QUERY"
    await wire.send({"type": "subscribe", "collection": "directus_users", "uid": "u"})
    refused = await wire.until(lambda m: m.get("uid") == "u")
    assert refused == {
        "type": "subscribe",
        "status": "error",
        "error": {
            "code": "INVALID_COLLECTION",
            "message": 'Only "directus_notifications" can be subscribed to here.',
        },
        "uid": "u",
    }


async def test_unsubscribe_is_confirmed_and_stops_events(rt: Client, mint: Any) -> None:
    admin = mint(user=INSTALLER, admin=True)
    wire = await open_wire(rt)
    await wire.auth(mint(user=MEMBER))
    await wire.subscribe("gone", event="create")
    await wire.subscribe("kept", event="create")
    await wire.send({"type": "unsubscribe", "uid": "gone"})
    confirmed = await wire.until(lambda m: m.get("event") == "unsubscribe")
    assert confirmed == {"type": "subscription", "event": "unsubscribe", "uid": "gone"}
    await send(rt, admin)
    await wire.event("kept", "create")
    assert not any(m.get("uid") == "gone" and m.get("event") == "create" for m in wire.seen)


async def test_subscription_limit(rt: Client, mint: Any) -> None:
    wire = await open_wire(rt)
    await wire.auth(mint(user=MEMBER))
    for i in range(20):
        assert (await wire.subscribe(f"s{i}", event="delete"))["event"] == "init"
    refused = await wire.subscribe("s20", event="delete")
    assert refused["error"] == {
        "code": "LIMIT_EXCEEDED",
        "message": "At most 20 subscriptions per connection.",
    }


async def test_connection_limit_per_user(rt: Client, mint: Any) -> None:
    token = mint(user=MEMBER)
    wires = []
    for _ in range(10):
        wire = await open_wire(rt)
        assert (await wire.auth(token))["status"] == "ok"
        wires.append(wire)
    # Named at the upgrade (Authorization header): refused with 429 before upgrading.
    r = await rt.get(
        "/websocket",
        headers={
            "Authorization": token,
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert r.status == 429
    assert (await r.json())["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    # Named only by the handshake (browsers): refused at `auth`.
    eleventh = await open_wire(rt)
    answer = await eleventh.auth(token)
    assert answer["error"]["code"] == "LIMIT_EXCEEDED"
    assert await eleventh.closed() == WSCloseCode.TRY_AGAIN_LATER
    # Another user is not affected; closing one frees a place.
    other = await open_wire(rt)
    assert (await other.auth(mint(user=INSTALLER)))["status"] == "ok"
    await wires[0].ws.close()
    hub = rt.app[REALTIME].hub
    await until(lambda: hub.connections(ACCOUNT, MEMBER) == 9)
    again = await open_wire(rt)
    assert (await again.auth(token))["status"] == "ok"


async def test_message_over_64_kib_closes_with_1009(rt: Client, mint: Any) -> None:
    wire = await open_wire(rt)
    await wire.auth(mint(user=MEMBER))
    await wire.ws.send_str(json.dumps({"type": "ping", "pad": "x" * 70_000}))
    assert await wire.closed() == WSCloseCode.MESSAGE_TOO_BIG


async def test_token_expiry_then_fresh_auth_resumes(rt: Client, mint: Any) -> None:
    admin = mint(user=INSTALLER, admin=True)
    wire = await open_wire(rt)
    await wire.auth(mint(user=MEMBER, lifetime=1))
    await wire.subscribe("s", event="create")
    expired = await wire.until(lambda m: m.get("error", {}).get("code") == "TOKEN_EXPIRED")
    assert expired["type"] == "auth"
    assert (await wire.auth(mint(user=MEMBER)))["status"] == "ok"
    row_id = await send(rt, admin)
    assert (await wire.event("s", "create"))["data"][0]["id"] == row_id


async def test_token_expiry_without_fresh_auth_is_auth_timeout(rt: Client, mint: Any) -> None:
    wire = await open_wire(rt)
    await wire.auth(mint(user=MEMBER, lifetime=1))
    await wire.until(lambda m: m.get("error", {}).get("code") == "TOKEN_EXPIRED")
    await wire.closed()
    assert wire.seen[-1]["error"]["code"] == "AUTH_TIMEOUT"


async def test_reauth_as_another_user_is_refused(rt: Client, mint: Any) -> None:
    wire = await open_wire(rt)
    await wire.auth(mint(user=MEMBER))
    answer = await wire.auth(mint(user=INSTALLER))
    assert answer["error"]["code"] == "AUTH_FAILED"
    await wire.closed()


async def test_deeply_nested_json_is_refused_and_the_connection_lives(
    rt: Client, mint: Any
) -> None:
    """A message, or a filter sent as a string, nested deeper than any JSON body may be
    (contract §10: 64 levels) is answered INVALID_PAYLOAD / INVALID_QUERY, and the socket
    goes on; the decoder ran out of stack on it and the connection ended with no word."""
    wire = await open_wire(rt)
    await wire.auth(mint(user=MEMBER))
    await wire.ws.send_str("[" * 30_000)
    refused = await wire.until(lambda m: m.get("status") == "error")
    assert refused["error"]["code"] == "INVALID_PAYLOAD"
    assert "nested deeper than 64" in refused["error"]["message"]

    deep_filter = '{"_and": [' * 2_000 + "{}" + "]}" * 2_000
    refused = await wire.subscribe("deep", query={"filter": deep_filter})
    assert refused["status"] == "error" and refused["error"]["code"] == "INVALID_QUERY"
    assert "nested deeper than 64" in refused["error"]["message"]

    await wire.send({"type": "ping", "uid": "still-here"})
    assert await wire.until(lambda m: m["type"] == "pong") == {"type": "pong", "uid": "still-here"}
