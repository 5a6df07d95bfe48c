"""Issue 14: the ledger in realtime (`GET /websocket`, contract §13), one instance on SQLite.

1. Event latency with 1,000 open subscriptions (50 connections x 20 subscriptions, 5 users x 10
   connections, the per-user and per-connection limits): notifications are sent one after
   another through `POST /notifications`; for each, the time from sending the POST until the
   `create` event reaches each subscription (p50/p99 over every delivery) and until it has
   reached all of them. One send at a time, so this is latency, not a saturation test.
2. Connections held: authenticated connections (one subscription each) opened in a bounded
   loop until the cap, the first refusal or the time cap; then every one is pinged and the
   answered pongs counted, so only live connections are reported.

Loopback only; the server is `python -m bench.serve` in its own process.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from bench.common import (
    Options,
    app_settings,
    database,
    fake_monday,
    install_account,
    latency_summary,
    say,
    served,
    session_token,
    write_result,
)

NAME = "realtime"
COLLECTION = "directus_notifications"
ITEM = "5550001"
SUBS_PER_CONNECTION = 20  # the §13 limit
CONNECTIONS_PER_USER = 10  # the §13 limit (per instance)


def sizes(opts: Options) -> dict[str, Any]:
    if opts.quick:
        return {"subscriptions": 100, "sends": 10, "max_connections": 200, "cap_s": 20.0}
    return {"subscriptions": 1000, "sends": 200, "max_connections": 4000, "cap_s": 90.0}


def user_for(index: int) -> str:
    """Connection `index`'s user: a new dev user every CONNECTIONS_PER_USER connections."""
    return str(20_000 + index // CONNECTIONS_PER_USER)


async def open_socket(
    http: aiohttp.ClientSession, base: str, user: str, queries: int
) -> aiohttp.ClientWebSocketResponse:
    """An authenticated connection with `queries` subscriptions, each past its `init`."""
    ws = await http.ws_connect(base.replace("http", "ws", 1) + "/websocket", autoping=True)
    await ws.send_json({"type": "auth", "access_token": session_token(user)})
    answer = await ws.receive_json(timeout=30)
    if answer.get("status") != "ok":
        await ws.close()
        raise RuntimeError(f"auth refused: {answer.get('error', {}).get('code')}")
    for n in range(queries):
        query = {"fields": ["id", "message"], "filter": {"item": {"_eq": ITEM}}, "limit": 1}
        await ws.send_json(
            {"type": "subscribe", "collection": COLLECTION, "query": query, "uid": str(n)}
        )
    inited = 0
    while inited < queries:
        message = await ws.receive_json(timeout=30)
        if message.get("status") == "error":
            raise RuntimeError(f"subscribe refused: {message['error']['code']}")
        inited += message.get("event") == "init"
    return ws


async def listen(ws: aiohttp.ClientWebSocketResponse, arrivals: dict[str, list[float]]) -> None:
    """Record when each `create` (by message text) reaches each subscription."""
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        message = json.loads(msg.data)
        if message.get("type") == "ping":
            await ws.send_json({"type": "pong"})
        elif message.get("event") == "create":
            now = time.perf_counter()
            for row in message.get("data", []):
                arrivals.setdefault(str(row.get("message")), []).append(now)


async def latency(base: str, opts: Options) -> dict[str, Any]:
    size = sizes(opts)
    connections = size["subscriptions"] // SUBS_PER_CONNECTION
    arrivals: dict[str, list[float]] = {}
    per_event: list[float] = []
    to_all: list[float] = []
    missed = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = [
            await open_socket(http, base, user_for(i), SUBS_PER_CONNECTION)
            for i in range(connections)
        ]
        listeners = [asyncio.create_task(listen(ws, arrivals)) for ws in sockets]
        headers = {"Authorization": session_token()}
        try:
            # Send -1 warms up (first statements, first relay) and is not counted.
            for n in range(-1, size["sends"]):
                text = f"realtime bench {n}"
                body = {"recipient": "12", "message": text, "collection": "Project", "item": ITEM}
                sent = time.perf_counter()
                async with http.post(base + "/notifications", json=body, headers=headers) as r:
                    await r.read()
                deadline = sent + 10.0
                while len(arrivals.get(text, [])) < size["subscriptions"]:
                    if time.perf_counter() > deadline:
                        break
                    await asyncio.sleep(0.002)
                got = arrivals.get(text, [])
                if n < 0:
                    continue
                missed += size["subscriptions"] - len(got)
                per_event.extend(t - sent for t in got)
                if len(got) == size["subscriptions"]:
                    to_all.append(max(got) - sent)
        finally:
            for task in listeners:
                task.cancel()
            for ws in sockets:
                await ws.close()
    result = {
        "subscriptions": size["subscriptions"],
        "connections": connections,
        "sends": size["sends"],
        "deliveries_missed": missed,
        "per_subscription": latency_summary(per_event),
        "to_all_subscriptions": latency_summary(to_all),
    }
    p = result["per_subscription"]
    a = result["to_all_subscriptions"]
    say(
        f"  {size['subscriptions']} subscriptions on {connections} connections: send -> create "
        f"p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms; reaching all: p50 {a['p50_ms']} ms, "
        f"p99 {a['p99_ms']} ms; {missed} deliveries missed"
    )
    return result


async def capacity(base: str, opts: Options) -> dict[str, Any]:
    size = sizes(opts)
    cap, started = size["max_connections"], time.perf_counter()
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    stopped_by = "cap"
    alive, opened_s = 0, 0.0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        try:
            while len(sockets) < cap:
                if time.perf_counter() - started > size["cap_s"]:
                    stopped_by = "time"
                    break
                try:
                    sockets.append(await open_socket(http, base, user_for(len(sockets)), 1))
                except Exception as exc:  # the first refusal ends the loop; say which
                    stopped_by = f"error: {type(exc).__name__}: {str(exc)[:80]}"
                    break
            opened_s = time.perf_counter() - started
            for ws in sockets:
                await ws.send_json({"type": "ping", "uid": "alive"})
            for ws in sockets:
                try:
                    while True:
                        message = await ws.receive_json(timeout=10)
                        if message.get("type") == "pong":
                            alive += 1
                            break
                except Exception:  # noqa: S112 (a dead connection is simply not counted)
                    continue
        finally:
            for ws in sockets:
                await ws.close()
    result = {
        "opened": len(sockets),
        "alive_after_ping": alive,
        "stopped_by": stopped_by,
        "open_s": round(opened_s, 2),
        "connections_per_s": round(len(sockets) / opened_s, 1) if opened_s > 0 else None,
    }
    say(
        f"  connections held: {alive} of {len(sockets)} answered a ping "
        f"(opened in {opened_s:.1f} s, stopped by {stopped_by})"
    )
    return result


async def run(opts: Options) -> dict[str, Any]:
    size = sizes(opts)
    say(
        f"realtime: {size['subscriptions']} subscriptions, {size['sends']} sends; "
        f"up to {size['max_connections']} connections (cap {size['cap_s']:g} s)"
    )
    async with fake_monday() as fake, database("sqlite", opts, NAME) as url:
        await install_account(url)
        async with served("app", app_settings(url, fake.api_url), NAME) as base:
            results = {"latency": await latency(base, opts)}
            results["capacity"] = await capacity(base, opts)
    write_result(NAME, opts, size, results)
    return results
