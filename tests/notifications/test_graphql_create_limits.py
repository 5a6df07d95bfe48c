"""Contract §6 over Directus GraphQL: the same batch limits as POST /notifications."""

from __future__ import annotations

from typing import Any

from tests.notifications.helpers import MEMBER, connect, install, row_count

CREATE_MANY = """mutation ($d: [create_directus_notifications_input!]!) {
  create_notifications_items(data: $d) { id } }"""
ONE = {"recipient": "13", "message": "x", "collection": "Project", "item": "5550001"}


async def create_many(client: Any, token: str, items: list[dict[str, Any]]) -> Any:
    response = await client.post(
        "/graphql/system",
        json={"query": CREATE_MANY, "variables": {"d": items}},
        headers={"Authorization": token},
    )
    return await response.json()


async def test_empty_and_oversized_batches_are_refused_and_write_nothing(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await install(monday_client)
    await connect(monday_client, fake_monday.fake, user=MEMBER, kind="oauth")
    token = mint(user=MEMBER)
    for items in ([], [ONE] * 501):
        body = await create_many(monday_client, token, items)
        assert body["data"] is None or body["data"]["create_notifications_items"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_PAYLOAD"]
    assert await row_count(monday_client) == 0
    assert fake_monday.fake.requests_to("/v2") == []


async def test_a_mutation_with_an_idempotency_key_is_refused_and_sends_nothing(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    """The key is not supported on /graphql/system (docs/ledger-api.md): ignoring it made a
    retry send twice, so a mutation carrying it is refused whole, before anything runs."""
    await install(monday_client)
    await connect(monday_client, fake_monday.fake, user=MEMBER, kind="oauth")
    headers = {"Authorization": mint(user=MEMBER), "Idempotency-Key": "gql-1"}
    request = {"query": CREATE_MANY, "variables": {"d": [ONE]}}
    for _ in range(2):  # a retry
        response = await monday_client.post("/graphql/system", json=request, headers=headers)
        assert response.status == 400
        [error] = (await response.json())["errors"]
        assert error["extensions"]["code"] == "INVALID_PAYLOAD"
        assert error["extensions"]["field"] == "Idempotency-Key"
        assert "not supported on /graphql/system" in error["message"]
    assert await row_count(monday_client) == 0
    assert fake_monday.fake.requests_to("/v2") == []
    # A query carries it harmlessly (reads run again anyway).
    query = {"query": "{ notifications { id } }"}
    assert (await monday_client.post("/graphql/system", json=query, headers=headers)).status == 200
