"""Contract §3 and §10: each token family against each route family (a confusion matrix).

monday signs session tokens and lifecycle webhooks with the same client secret, so the
families are told apart by shape: session tokens carry `dat`; outbound tokens (lifecycle,
integration) carry top-level `accountId`, `userId`, `aud` (our URL + the route), `exp`.
Every cell states the exact answer; refusals change nothing and send nothing.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from server.token_mint import mint_integration, mint_lifecycle, mint_session
from tests.conftest import ACCOUNT, CLIENT_ID, CLIENT_SECRET, INSTALLER, SIGNING_SECRET
from tests.installations.helpers import event
from tests.notifications.helpers import install
from tests.security.conftest import (
    ACTIONS_AUD,
    ACTIONS_PATH,
    LIFECYCLE_AUD,
    MEMBER,
    days_ago,
    sign,
    table,
)

SHORT_LIVED = "short-lived-token-of-the-recipe"


def outbound(aud: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"accountId": int(ACCOUNT), "userId": int(INSTALLER), "aud": aud, "iat": now}
    claims["exp"] = now + 300
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def session() -> str:
    return mint_session(
        CLIENT_SECRET, account_id=ACCOUNT, user_id=INSTALLER, client_id=CLIENT_ID, is_admin=True
    )


def session_claims() -> dict[str, Any]:
    dat = {"client_id": CLIENT_ID, "account_id": int(ACCOUNT), "user_id": int(INSTALLER)}
    return {"dat": dat, "exp": int(time.time()) + 300}


TOKENS = {
    "session": session,
    "lifecycle": lambda: mint_lifecycle(
        CLIENT_SECRET, account_id=ACCOUNT, user_id=INSTALLER, audience=LIFECYCLE_AUD
    ),
    "integration": lambda: mint_integration(
        SIGNING_SECRET,
        account_id=ACCOUNT,
        user_id=MEMBER,
        audience=ACTIONS_AUD,
        short_lived_token=SHORT_LIVED,
    ),
    "session_signed_with_signing_secret": lambda: sign(session_claims(), SIGNING_SECRET),
    # An integration-shaped token, but signed with the client secret.
    "outbound_signed_with_client_secret": lambda: sign(
        outbound(ACTIONS_AUD, shortLivedToken=SHORT_LIVED), CLIENT_SECRET
    ),
    # What lifecycle handlers used to accept: claims under `dat`, no `exp`, 30 days old.
    "old_lifecycle_without_exp": lambda: sign(
        {"dat": {"account_id": int(ACCOUNT), "user_id": int(INSTALLER)}, "iat": days_ago(30)},
        CLIENT_SECRET,
    ),
    "lifecycle_without_exp": lambda: sign(
        outbound(LIFECYCLE_AUD, exp=None, iat=days_ago(30)), CLIENT_SECRET
    ),
    "lifecycle_wrong_aud": lambda: sign(outbound(ACTIONS_AUD), CLIENT_SECRET),
    "lifecycle_with_dat": lambda: sign(
        outbound(LIFECYCLE_AUD, dat=session_claims()["dat"]), CLIENT_SECRET
    ),
    "session_with_outbound_claims": lambda: sign(
        {**session_claims(), "accountId": int(ACCOUNT), "aud": LIFECYCLE_AUD}, CLIENT_SECRET
    ),
}

OK = "OK"
MAL, SIG, APP = "TOKEN_MALFORMED", "TOKEN_INVALID_SIGNATURE", "TOKEN_WRONG_APP"
# token -> (GET /installation, GET /views/board, POST /monday/lifecycle, POST actions)
MATRIX = {
    "session": (OK, OK, MAL, SIG),
    "lifecycle": (MAL, MAL, OK, SIG),
    "integration": (SIG, SIG, SIG, OK),
    "session_signed_with_signing_secret": (SIG, SIG, SIG, MAL),
    "outbound_signed_with_client_secret": (MAL, MAL, APP, SIG),
    "old_lifecycle_without_exp": (MAL, MAL, MAL, SIG),
    "lifecycle_without_exp": (MAL, MAL, MAL, SIG),
    "lifecycle_wrong_aud": (MAL, MAL, APP, SIG),
    "lifecycle_with_dat": (MAL, MAL, MAL, SIG),
    "session_with_outbound_claims": (MAL, MAL, MAL, SIG),
}
ROUTES = ("installation", "view", "lifecycle", "actions")
CELLS = [
    pytest.param(token, route, MATRIX[token][index], id=f"{token}-{route}")
    for token in MATRIX
    for index, route in enumerate(ROUTES)
]


async def call(client: Any, route: str, token: str) -> Any:
    headers = {"Authorization": token}
    if route == "installation":
        return await client.get("/installation", headers=headers)
    if route == "view":  # a view page load may carry the token in the query
        return await client.get("/views/board", params={"sessionToken": token})
    if route == "lifecycle":
        return await client.post("/monday/lifecycle", json=event("install"), headers=headers)
    inbound = {"userId": int(MEMBER), "itemId": 9876543210, "text": "Deal closed"}
    body = {"payload": {"inboundFieldValues": inbound}, "runtimeMetadata": {"actionUuid": "r1"}}
    return await client.post(ACTIONS_PATH, json=body, headers=headers)


@pytest.mark.parametrize(("token", "route", "expected"), CELLS)
async def test_each_family_only_on_its_routes(
    sqlite_app: Any, fake_monday: Any, token: str, route: str, expected: str
) -> None:
    await install(sqlite_app)
    fake_monday.fake.add_token(SHORT_LIVED, MEMBER, ACCOUNT, "short_lived")
    before = await table(sqlite_app, "installations")
    response = await call(sqlite_app, route, TOKENS[token]())
    if expected == OK:
        assert response.status == 200, await response.text()
        return
    assert response.status == 401, await response.text()
    if route == "view":  # an HTML page asking the frame for a fresh token, not JSON
        assert response.content_type == "text/html"
        assert expected in await response.text()
    else:
        assert (await response.json())["errors"][0]["extensions"]["code"] == expected
    assert await table(sqlite_app, "installations") == before
    assert await table(sqlite_app, "lifecycle_events") == []
    assert await table(sqlite_app, "notifications") == []
    assert fake_monday.fake.requests_to("/v2") == []
