"""Contract §10: monday ids are normalised one way everywhere (server/ids.py).

ASCII digits, no leading zero, not zero, at most 20 digits; a JSON integer is accepted in
that form. Anything else is refused, never repaired: 400 in a request body, 401
`TOKEN_MALFORMED` in a token. So "1001", 1001 and nothing else name account 1001.
"""

from __future__ import annotations

from typing import Any

import pytest

from server.ids import InvalidMondayId, monday_id
from server.token_mint import mint_integration, mint_session
from tests.conftest import ACCOUNT, CLIENT_ID, CLIENT_SECRET, INSTALLER, SIGNING_SECRET
from tests.installations.helpers import event, lifecycle_token
from tests.notifications.helpers import connect, install, notification
from tests.security.conftest import ACTIONS_AUD, ACTIONS_PATH, LIFECYCLE_AUD, sign, table

VALID = [(1, "1"), (1001, "1001"), ("1001", "1001"), ("9" * 20, "9" * 20), (10**19, str(10**19))]
INVALID = [
    "007",  # a second spelling of 7: refused, not read as "7"
    "0",
    0,
    -7,
    "-7",
    "+7",
    " 7",
    "7 ",
    "7\n",
    "",
    "1_000",
    "\u0667",  # ARABIC-INDIC DIGIT SEVEN: str.isdigit() says True
    "\u00b2",  # SUPERSCRIPT TWO: str.isdigit() says True
    "\uff17",  # FULLWIDTH DIGIT SEVEN
    7.0,
    "7.0",
    "1e3",
    True,
    False,
    None,
    [7],
    {"id": 7},
    "9" * 21,
    10**20,
]


@pytest.mark.parametrize(("value", "expected"), VALID)
def test_valid_ids_have_one_form(value: Any, expected: str) -> None:
    assert monday_id(value) == expected


@pytest.mark.parametrize("value", INVALID, ids=repr)
def test_anything_else_is_refused(value: Any) -> None:
    with pytest.raises(InvalidMondayId):
        monday_id(value)


SESSION_BAD = ["007", "01001", " 1001", "\u0661\u0660\u0660\u0661", 1001.0, True, 0, ""]


@pytest.mark.parametrize("bad", SESSION_BAD, ids=repr)
async def test_a_session_token_with_a_bad_id_is_401(sqlite_app: Any, bad: Any) -> None:
    token = mint_session(
        CLIENT_SECRET,
        account_id=ACCOUNT,
        user_id=INSTALLER,
        client_id=CLIENT_ID,
        is_admin=True,
        extra_dat={"account_id": bad},
    )
    response = await sqlite_app.get("/installation", headers={"Authorization": token})
    assert response.status == 401
    assert (await response.json())["errors"][0]["extensions"]["code"] == "TOKEN_MALFORMED"


@pytest.mark.parametrize("bad", ["01001", " 1001", "\u0661\u0660\u0660\u0661", 1001.5, "-1001"])
async def test_a_lifecycle_body_with_a_bad_account_id_is_400(app: Any, bad: Any) -> None:
    response = await app.post(
        "/monday/lifecycle",
        json=event("install", account_id=bad),
        headers={"Authorization": lifecycle_token()},
    )
    assert response.status == 400
    error = (await response.json())["errors"][0]
    assert (error["extensions"]["code"], error["extensions"]["field"]) == (
        "INVALID_PAYLOAD",
        "data.account_id",
    )
    assert await table(app, "installations") == []
    assert await table(app, "lifecycle_events") == []


@pytest.mark.parametrize("bad", ["011", "+11", 11.0, True])
async def test_a_lifecycle_body_with_a_bad_user_id_is_400(app: Any, bad: Any) -> None:
    response = await app.post(
        "/monday/lifecycle",
        json=event("install", user_id=bad),
        headers={"Authorization": lifecycle_token()},
    )
    assert response.status == 400
    assert (await response.json())["errors"][0]["extensions"]["field"] == "data.user_id"
    assert await table(app, "installations") == []


async def test_a_number_and_its_string_are_the_same_account(app: Any) -> None:
    # The token says "1001" (a string), the body 1001 (a number): the same account.
    token = sign(
        {
            "accountId": ACCOUNT,
            "userId": INSTALLER,
            "aud": LIFECYCLE_AUD,
            "iat": 1,
            "exp": 2**40,
        },
        CLIENT_SECRET,
    )
    response = await app.post(
        "/monday/lifecycle", json=event("install"), headers={"Authorization": token}
    )
    assert response.status == 200, await response.text()
    [row] = await table(app, "installations")
    assert (row["account_id"], row["installer_user_id"]) == (ACCOUNT, INSTALLER)


@pytest.mark.parametrize("bad", ["01001", "\u0661\u0660\u0660\u0661", 1001.0, " 1001"], ids=repr)
async def test_an_integration_token_with_a_bad_id_is_401(sqlite_app: Any, bad: Any) -> None:
    token = sign(
        {"accountId": bad, "userId": 12, "aud": ACTIONS_AUD, "iat": 1, "exp": 2**40},
        SIGNING_SECRET,
    )
    response = await sqlite_app.post(ACTIONS_PATH, json={}, headers={"Authorization": token})
    assert response.status == 401
    assert (await response.json())["errors"][0]["extensions"]["code"] == "TOKEN_MALFORMED"


@pytest.mark.parametrize(
    ("field", "bad"),
    [("recipient", "0012"), ("recipient", " 12"), ("item", "+5550001"), ("item", "\uff15")],
)
async def test_a_notification_with_a_bad_id_is_400(
    app: Any, fake_monday: Any, mint: Any, field: str, bad: str
) -> None:
    await install(app)
    await connect(app, fake_monday.fake, user="12", kind="oauth")
    response = await app.post(
        "/notifications", json=notification(**{field: bad}), headers={"Authorization": mint()}
    )
    assert response.status == 400
    error = (await response.json())["errors"][0]
    assert error["extensions"]["code"] == "INVALID_PAYLOAD"
    assert await table(app, "notifications") == []
    assert fake_monday.fake.requests_to("/v2") == []


async def test_an_automation_with_a_bad_recipient_id_is_refused(app: Any, fake_monday: Any) -> None:
    await install(app)
    fake_monday.fake.add_token("slt", "12", ACCOUNT, "short_lived")
    token = mint_integration(
        SIGNING_SECRET,
        account_id=ACCOUNT,
        user_id=12,
        audience=ACTIONS_AUD,
        short_lived_token="slt",
    )
    body = {"payload": {"inboundFieldValues": {"userId": "012", "itemId": 5, "text": "hi"}}}
    response = await app.post(ACTIONS_PATH, json=body, headers={"Authorization": token})
    assert response.status == 422
    assert "userId" in (await response.json())["notificationErrorDescription"]
    assert fake_monday.fake.requests_to("/v2") == []
