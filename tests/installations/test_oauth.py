"""The app's OAuth flow (contract §4) end to end against the fake monday over HTTP."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from server.appkeys import ENGINE, SERVICES
from server.clock import frozen
from server.installations.crypto import CIPHER
from server.installations.model import Credential
from server.settings import Settings
from server.storage.installations import SqlCredentials
from tests.conftest import ACCOUNT, CLIENT_ID, INSTALLER
from tests.installations.helpers import auth, event, post_event, query

MEMBER = "12"


async def start(client: Any, token: str) -> str:
    response = await client.post("/oauth/start", headers=auth(token))
    assert response.status == 200, await response.text()
    assert "Set-Cookie" not in response.headers
    url: str = (await response.json())["data"]["authorize_url"]
    return url


async def consent(authorize_url: str, *, as_user: str, deny: bool = False) -> dict[str, str]:
    """Play the user on monday's consent page: follow the authorize URL to its redirect."""
    url = f"{authorize_url}&user_id={as_user}" + ("&deny=1" if deny else "")
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, allow_redirects=False) as response,
    ):
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith("http://127.0.0.1:8080/oauth/callback?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def callback(client: Any, params: dict[str, str]) -> tuple[int, str]:
    response = await client.get("/oauth/callback", params=params)
    assert response.content_type == "text/html"
    return response.status, await response.text()


def token_requests(fake_monday: Any) -> list[Any]:
    return list(fake_monday.fake.requests_to("/oauth2/token"))


async def stored_oauth(client: Any, user: str) -> Credential | None:
    return await SqlCredentials(client.app[ENGINE], client.app[CIPHER]).get(ACCOUNT, user, "oauth")


async def test_start_builds_the_authorize_url_and_stores_only_a_digest(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    url = await start(monday_client, mint(user=MEMBER))
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == fake_monday.authorize_url
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == "http://127.0.0.1:8080/oauth/callback"
    assert params["scope"] == "me:read users:read boards:read notifications:write"
    state = params["state"]
    assert len(state) >= 32

    rows = query(
        monday_settings, "SELECT state_digest, account_id, user_id, used_at FROM oauth_states"
    )
    assert rows == [(hashlib.sha256(state.encode()).hexdigest(), ACCOUNT, MEMBER, None)]
    # A second start gives a different state.
    assert (
        parse_qs(urlsplit(await start(monday_client, mint(user=MEMBER))).query)["state"][0] != state
    )


async def test_start_needs_a_session(monday_client: Any) -> None:
    response = await monday_client.post("/oauth/start")
    assert response.status == 401


async def test_the_full_flow_stores_the_users_token_encrypted(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    params = await consent(await start(monday_client, mint(user=MEMBER)), as_user=MEMBER)
    status, page = await callback(monday_client, params)
    assert status == 200
    assert "You can close this window" in page
    assert "Max Member" in page

    granted = [t for t in fake_monday.fake.tokens.values() if t.kind == "oauth"]
    assert len(granted) == 1
    access = granted[0].token
    assert access not in page
    credential = await stored_oauth(monday_client, MEMBER)
    assert credential is not None
    assert credential.secret == access
    assert credential.refresh_secret is None  # legacy tokens: no refresh, no expiry
    assert credential.expires_at is None
    [(encrypted,)] = query(monday_settings, "SELECT secret_encrypted FROM credentials")
    assert access not in encrypted

    # The code was exchanged with our client credentials and the exact redirect URI.
    [exchange] = token_requests(fake_monday)
    assert exchange.body["client_id"] == CLIENT_ID
    assert exchange.body["redirect_uri"] == "http://127.0.0.1:8080/oauth/callback"
    # The state is spent.
    assert query(monday_settings, "SELECT used_at IS NOT NULL FROM oauth_states") == [(1,)]

    view = await monday_client.get("/installation", headers=auth(mint(user=MEMBER)))
    creds = (await view.json())["data"]["credentials"]
    assert [(c["kind"], c["owner_user_id"], c["last4"]) for c in creds] == [
        ("oauth", MEMBER, access[-4:])
    ]


async def test_the_state_is_single_use(monday_client: Any, fake_monday: Any, mint: Any) -> None:
    await post_event(monday_client, event("install"))
    params = await consent(await start(monday_client, mint(user=MEMBER)), as_user=MEMBER)
    assert (await callback(monday_client, params))[0] == 200
    status, page = await callback(monday_client, params)
    assert status == 400
    assert "click Connect again" in page
    assert len(token_requests(fake_monday)) == 1  # the replay never reached monday


async def test_an_expired_state_is_refused(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    params = await consent(await start(monday_client, mint(user=MEMBER)), as_user=MEMBER)
    # The state is valid 10 minutes: come back 11 minutes later on the product's clock (no
    # write to the database behind the server's back, which would block its event loop).
    eleven_minutes_later = datetime.now(UTC) + timedelta(minutes=11)
    with frozen(eleven_minutes_later):
        status, page = await callback(monday_client, params)
    assert status == 400
    assert "expired" in page
    assert token_requests(fake_monday) == []
    assert await stored_oauth(monday_client, MEMBER) is None


async def test_an_unknown_or_missing_state_is_refused(monday_client: Any, fake_monday: Any) -> None:
    status, page = await callback(monday_client, {"code": "abc", "state": "made-up"})
    assert status == 400
    assert "click Connect again" in page
    status, _ = await callback(monday_client, {"code": "abc"})
    assert status == 400
    assert token_requests(fake_monday) == []


async def test_the_state_is_bound_to_the_user_who_started(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    # User 12 starts; user 13 completes the consent with that link.
    params = await consent(await start(monday_client, mint(user=MEMBER)), as_user="13")
    status, page = await callback(monday_client, params)
    assert status == 403
    assert "different user" in page
    assert query(monday_settings, "SELECT COUNT(*) FROM credentials") == [(0,)]


async def test_a_token_of_another_account_is_refused(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    params = await consent(
        await start(monday_client, mint(user=MEMBER)) + "&account_id=2002", as_user=MEMBER
    )
    status, _ = await callback(monday_client, params)
    assert status == 403
    assert query(monday_settings, "SELECT COUNT(*) FROM credentials") == [(0,)]


async def test_access_denied_says_so_and_spends_the_state(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    params = await consent(await start(monday_client, mint(user=MEMBER)), as_user=MEMBER, deny=True)
    assert params["error"] == "access_denied"
    status, page = await callback(monday_client, params)
    assert status == 400
    assert "Access was denied" in page
    assert "You can close this window" not in page
    assert query(monday_settings, "SELECT used_at IS NOT NULL FROM oauth_states") == [(1,)]
    assert token_requests(fake_monday) == []


async def test_the_error_page_escapes_what_it_is_given(monday_client: Any) -> None:
    status, page = await callback(
        monday_client, {"error": "<script>alert(1)</script>", "state": "<b>x</b>"}
    )
    assert status == 400
    assert "<script>" not in page
    assert "<b>x</b>" not in page


async def test_without_lifecycle_the_first_admin_to_connect_is_the_installer(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    # A member connecting does not claim the account.
    params = await consent(await start(monday_client, mint(user=MEMBER)), as_user=MEMBER)
    assert (await callback(monday_client, params))[0] == 200
    assert query(monday_settings, "SELECT COUNT(*) FROM installations") == [(0,)]

    params = await consent(await start(monday_client, mint(admin=True)), as_user=INSTALLER)
    assert (await callback(monday_client, params))[0] == 200
    assert query(monday_settings, "SELECT installed, installer_user_id FROM installations") == [
        (1, INSTALLER)
    ]


async def test_an_uninstalled_account_cannot_start(monday_client: Any, mint: Any) -> None:
    await post_event(monday_client, event("install"))
    await post_event(monday_client, event("uninstall"))
    response = await monday_client.post("/oauth/start", headers=auth(mint(user=MEMBER)))
    assert response.status == 409


async def _connect_with_refresh(
    client: Any, fake_monday: Any, mint: Any, lifetime: int
) -> Credential:
    fake_monday.fake.issue_refresh_tokens = True
    fake_monday.fake.access_token_lifetime_seconds = lifetime
    await post_event(client, event("install"))
    params = await consent(await start(client, mint(user=MEMBER)), as_user=MEMBER)
    assert (await callback(client, params))[0] == 200
    credential = await stored_oauth(client, MEMBER)
    assert credential is not None
    return credential


async def test_refresh_tokens_are_stored_and_used_before_expiry(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    credential = await _connect_with_refresh(monday_client, fake_monday, mint, lifetime=120)
    assert credential.refresh_secret is not None
    assert credential.refresh_secret.startswith("fake-refresh-")
    assert credential.expires_at is not None
    assert credential.expires_at - datetime.now(UTC) < timedelta(minutes=3)

    app = monday_client.app
    fresh = await app[SERVICES].installations.credentials.refresher.fresh(credential)
    assert fresh.secret != credential.secret
    assert fresh.refresh_secret not in (None, credential.refresh_secret)
    assert fresh.needs_reconnect is False
    refreshes = [r for r in token_requests(fake_monday) if r.body["grant_type"] == "refresh_token"]
    assert len(refreshes) == 1
    assert refreshes[0].body["refresh_token"] == credential.refresh_secret

    stored = await stored_oauth(monday_client, MEMBER)
    assert stored is not None
    assert (stored.secret, stored.refresh_secret) == (fresh.secret, fresh.refresh_secret)
    # The new token is one monday accepts.
    user = await fake_me(monday_settings, fresh.secret)
    assert user == MEMBER


async def fake_me(settings: Settings, token: str) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            settings.monday_api_url,
            json={"query": "query { me { id } }"},
            headers={"Authorization": token, "API-Version": settings.monday_api_version},
        ) as response,
    ):
        body = await response.json()
    return str(body["data"]["me"]["id"])


async def test_a_token_far_from_expiry_is_not_refreshed(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    credential = await _connect_with_refresh(monday_client, fake_monday, mint, lifetime=3600)
    app = monday_client.app
    same = await app[SERVICES].installations.credentials.refresher.fresh(credential)
    assert same.secret == credential.secret
    assert [r.body["grant_type"] for r in token_requests(fake_monday)] == ["authorization_code"]


async def test_a_refused_refresh_marks_the_credential_for_reconnect(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    credential = await _connect_with_refresh(monday_client, fake_monday, mint, lifetime=60)
    assert credential.refresh_secret is not None
    fake_monday.fake.take_refresh_token(credential.refresh_secret)  # monday forgot it
    app = monday_client.app
    result = await app[SERVICES].installations.credentials.refresher.fresh(credential)
    assert result.needs_reconnect is True
    stored = await stored_oauth(monday_client, MEMBER)
    assert stored is not None and stored.needs_reconnect is True
    view = await monday_client.get("/installation", headers=auth(mint(user=MEMBER)))
    assert (await view.json())["data"]["credentials"][0]["needs_reconnect"] is True


async def test_concurrent_refreshes_use_the_rotating_refresh_token_once(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    import asyncio

    credential = await _connect_with_refresh(monday_client, fake_monday, mint, lifetime=60)
    fake_monday.fake.access_token_lifetime_seconds = 3600  # the refreshed token lives long
    app = monday_client.app
    results = await asyncio.gather(
        *(app[SERVICES].installations.credentials.refresher.fresh(credential) for _ in range(3))
    )
    assert {r.secret for r in results} == {results[0].secret}
    assert all(not r.needs_reconnect for r in results)
    refreshes = [r for r in token_requests(fake_monday) if r.body["grant_type"] == "refresh_token"]
    assert len(refreshes) == 1


async def test_a_head_request_does_not_spend_the_state(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    params = await consent(await start(monday_client, mint(user=MEMBER)), as_user=MEMBER)
    head = await monday_client.head("/oauth/callback", params=params)
    assert head.status == 405
    assert query(monday_settings, "SELECT used_at FROM oauth_states") == [(None,)]
    assert (await callback(monday_client, params))[0] == 200


async def test_one_user_keeps_at_most_five_sign_ins_under_way(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    """A caller starting sign-ins in a loop must not grow the table: the oldest pending one
    ends when a sixth starts; the five newest still work, other users' are untouched."""
    await post_event(monday_client, event("install"))
    other = await start(monday_client, mint(user=INSTALLER, admin=True))
    urls = [await start(monday_client, mint(user=MEMBER)) for _ in range(30)]
    pending = query(
        monday_settings, "SELECT user_id FROM oauth_states WHERE used_at IS NULL ORDER BY user_id"
    )
    assert pending == [(INSTALLER,)] + [(MEMBER,)] * 5
    status, _page = await callback(monday_client, await consent(urls[0], as_user=MEMBER))
    assert status == 400  # ended by the newer ones
    status, _page = await callback(monday_client, await consent(urls[-5], as_user=MEMBER))
    assert status == 200
    status, _page = await callback(monday_client, await consent(other, as_user=INSTALLER))
    assert status == 200
