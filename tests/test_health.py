from __future__ import annotations

from typing import Any


async def test_healthz_answers(client: Any) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json()) == {"status": "ok"}


async def test_readyz_reaches_the_database(client: Any) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json()) == {"status": "ready"}


async def test_unknown_route_is_enveloped(client: Any) -> None:
    response = await client.get("/no/such/route")
    assert response.status == 404
    body = await response.json()
    assert body["errors"][0]["extensions"]["code"] == "ROUTE_NOT_FOUND"


async def test_wrong_method_is_enveloped_with_allow(client: Any) -> None:
    response = await client.post("/healthz")
    assert response.status == 405
    body = await response.json()
    assert body["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in response.headers["Allow"]
