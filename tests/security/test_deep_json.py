"""JSON nesting deeper than 64 levels is 400 INVALID_PAYLOAD on every JSON route (contract
§10), decided before the decoder recurses: ~1,000 levels used to be a RecursionError (500)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from server.app import create_app
from server.settings import Settings
from server.token_mint import mint_integration
from tests.conftest import ACCOUNT, INSTALLER, SIGNING_SECRET, Mint
from tests.installations.helpers import lifecycle_token
from tests.notifications.helpers import MEMBER

ACTION = "/monday/actions/notify"
MAX_DEPTH = 64  # contract §10

# Every route that reads a JSON body: (method, path as registered, who calls it).
JSON_ROUTES = [
    ("POST", "/notifications", "session"),
    ("POST", "/notifications/{id}/relay", "session"),
    ("SEARCH", "/notifications", "session"),
    ("PATCH", "/notifications", "session"),
    ("PATCH", "/notifications/{id}", "session"),
    ("DELETE", "/notifications", "session"),
    ("POST", "/graphql/system", "session"),
    ("POST", "/v2", "session"),
    ("POST", ACTION, "integration"),
    ("POST", "/monday/lifecycle", "lifecycle"),
    ("PATCH", "/installation", "session"),
    ("PUT", "/installation/api-key", "session"),
    ("PUT", "/preferences/mutes", "session"),  # contract §12
    ("DELETE", "/preferences/mutes", "session"),
]
# Routes that take a body-carrying method but read no body.
NO_BODY = {
    ("POST", "/oauth/start"),
    ("DELETE", "/notifications/{id}"),
    ("DELETE", "/installation/api-key"),
}


def nested(depth: int) -> Any:
    """A JSON value `depth` levels deep (a list of lists ... of 1); built without recursion."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def deep_body(levels: int) -> bytes:
    """An object whose total nesting is `levels` (the object itself is level 1)."""
    return (
        '{"query": "{ __typename }", "x": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"
    ).encode()


def headers_for(caller: str, mint: Mint) -> dict[str, str]:
    if caller == "integration":
        token = mint_integration(
            SIGNING_SECRET,
            account_id=ACCOUNT,
            user_id=MEMBER,
            audience="http://127.0.0.1:8080" + ACTION,
            short_lived_token="short-lived",
        )
    elif caller == "lifecycle":
        token = lifecycle_token()
    else:
        token = mint(user=INSTALLER, admin=True)
    return {"Authorization": token, "Content-Type": "application/json"}


def test_the_list_covers_every_route_with_a_body(settings: Settings) -> None:
    app = create_app(settings)
    with_body = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method in {"POST", "PUT", "PATCH", "DELETE", "SEARCH"} and route.resource
    }
    listed = {(method, path) for method, path, _ in JSON_ROUTES}
    assert with_body == listed | NO_BODY


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 1000, 100_000])
@pytest.mark.parametrize(("method", "path", "caller"), JSON_ROUTES)
async def test_too_deep_is_invalid_payload(
    client: Any, mint: Mint, method: str, path: str, caller: str, levels: int
) -> None:
    response = await client.request(
        method,
        path.replace("{id}", "1"),
        data=deep_body(levels),
        headers=headers_for(caller, mint),
    )
    text = await response.text()
    assert response.status == 400, text
    [error] = json.loads(text)["errors"]
    assert error["extensions"]["code"] == "INVALID_PAYLOAD"
    assert f"nested deeper than {MAX_DEPTH} levels" in error["message"]


async def test_64_levels_are_accepted(client: Any, mint: Mint) -> None:
    """GraphQL variables may nest up to the limit (this one is unused, so ignored)."""
    body = {"query": "{ notifications { id } }", "variables": {"unused": nested(MAX_DEPTH - 2)}}
    # The body object, the variables object and 62 lists: 64 levels.
    assert json.dumps(body).count("[") == MAX_DEPTH - 2
    response = await client.post(
        "/graphql/system", json=body, headers={"Authorization": mint(user=INSTALLER)}
    )
    assert response.status == 200, await response.text()
    assert (await response.json()) == {"data": {"notifications": []}}


@pytest.mark.parametrize("parameter", ["filter", "aggregate"])
async def test_deep_query_parameter_is_a_bad_query_not_a_500(
    client: Any, mint: Mint, parameter: str
) -> None:
    deep = quote("[" * 1300 + "]" * 1300)  # within the 8190-byte request line
    response = await client.get(
        f"/notifications?{parameter}={deep}", headers={"Authorization": mint(user=INSTALLER)}
    )
    assert response.status == 400, await response.text()
    assert (await response.json())["errors"][0]["extensions"]["code"] == "INVALID_QUERY"
