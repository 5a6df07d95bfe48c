"""Contract §10: OAuth authorizations carry PKCE (S256); the verifier is kept server-side,
encrypted, with the state, sent with the code exchange, and never logged or returned.
The fake monday checks the verifier against the challenge like monday's newer OAuth flow."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from server.appkeys import ENGINE
from server.installations.crypto import CIPHER, CredentialCipher
from server.settings import Settings
from server.storage.db import create_engine
from server.storage.installations import SqlCredentials, SqlOAuthStates
from server.storage.tables import oauth_states
from tests.conftest import ACCOUNT, CLIENT_ID, CLIENT_SECRET, ENCRYPTION_KEY
from tests.installations.helpers import auth, event, post_event, query

MEMBER = "12"
REDIRECT = "http://127.0.0.1:8080/oauth/callback"


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def start(client: Any, mint: Any) -> dict[str, str]:
    await post_event(client, event("install"))
    response = await client.post("/oauth/start", headers=auth(mint(user=MEMBER)))
    assert response.status == 200, await response.text()
    url: str = (await response.json())["data"]["authorize_url"]
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()} | {"url": url}


async def consent(authorize_url: str) -> dict[str, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{authorize_url}&user_id={MEMBER}", allow_redirects=False) as response,
    ):
        assert response.status == 302
        location = response.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def test_the_authorize_url_carries_an_s256_challenge(
    monday_client: Any, monday_settings: Settings, mint: Any
) -> None:
    params = await start(monday_client, mint)
    assert params["code_challenge_method"] == "S256"
    challenge = params["code_challenge"]
    assert len(challenge) == 43 and "=" not in challenge
    [(stored,)] = query(monday_settings, "SELECT code_verifier_encrypted FROM oauth_states")
    assert stored  # kept with the state, and only encrypted (checked below against the clear one)
    assert challenge not in stored
    again = await start(monday_client, mint)
    assert again["code_challenge"] != challenge  # one verifier per flow


async def test_the_full_flow_sends_the_verifier_and_monday_checks_it(
    monday_client: Any,
    monday_settings: Settings,
    fake_monday: Any,
    mint: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_monday.fake.require_pkce = True
    params = await start(monday_client, mint)
    [(encrypted,)] = query(monday_settings, "SELECT code_verifier_encrypted FROM oauth_states")
    response = await monday_client.get("/oauth/callback", params=await consent(params["url"]))
    page = await response.text()
    assert response.status == 200, page

    [exchange] = fake_monday.fake.requests_to("/oauth2/token")
    verifier = exchange.body["code_verifier"]
    assert 43 <= len(verifier) <= 128
    assert s256(verifier) == params["code_challenge"]
    assert verifier not in encrypted  # encrypted at rest ...
    assert CredentialCipher([ENCRYPTION_KEY]).decrypt(encrypted) == verifier
    # ... and gone once the state is spent; never on a page or in a log line.
    assert query(monday_settings, "SELECT code_verifier_encrypted FROM oauth_states") == [(None,)]
    assert verifier not in page
    assert all(verifier not in record.getMessage() for record in caplog.records)
    assert all(verifier not in str(record.__dict__) for record in caplog.records)
    credential = await SqlCredentials(monday_client.app[ENGINE], monday_client.app[CIPHER]).get(
        ACCOUNT, MEMBER, "oauth"
    )
    assert credential is not None


async def test_a_wrong_verifier_connects_nothing(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    params = await start(monday_client, mint)
    wrong = monday_client.app[CIPHER].encrypt("w" * 64)
    async with monday_client.app[ENGINE].begin() as conn:
        await conn.execute(update(oauth_states).values(code_verifier_encrypted=wrong))
    response = await monday_client.get("/oauth/callback", params=await consent(params["url"]))
    assert response.status == 400
    assert (
        await SqlCredentials(monday_client.app[ENGINE], monday_client.app[CIPHER]).get(
            ACCOUNT, MEMBER, "oauth"
        )
        is None
    )
    assert [t for t in fake_monday.fake.tokens.values() if t.kind == "oauth"] == []


async def fake_code(http: aiohttp.ClientSession, fake_monday: Any, **extra: str) -> str:
    params = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "user_id": MEMBER, **extra}
    async with http.get(fake_monday.authorize_url, params=params, allow_redirects=False) as r:
        assert r.status == 302
        query_ = parse_qs(urlsplit(r.headers["Location"]).query)
    assert "code" in query_, query_
    return query_["code"][0]


async def exchange(http: aiohttp.ClientSession, fake_monday: Any, **form: str) -> tuple[int, Any]:
    body = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uri": REDIRECT}
    async with http.post(fake_monday.token_url, json={**body, **form}) as r:
        return r.status, await r.json()


async def test_the_fake_monday_checks_the_verifier_like_monday(fake_monday: Any) -> None:
    verifier = "v" * 50
    challenge = {"code_challenge": s256(verifier), "code_challenge_method": "S256"}
    async with aiohttp.ClientSession() as http:
        code = await fake_code(http, fake_monday, **challenge)
        assert (await exchange(http, fake_monday, code=code))[1]["error"] == "invalid_grant"
        code = await fake_code(http, fake_monday, **challenge)
        status, body = await exchange(http, fake_monday, code=code, code_verifier="x" * 50)
        assert (status, body["error"]) == (400, "invalid_grant")
        code = await fake_code(http, fake_monday, **challenge)
        status, body = await exchange(http, fake_monday, code=code, code_verifier=verifier)
        assert status == 200 and body["access_token"]
        # Only S256; and when the app version requires PKCE, no challenge is refused.
        async with http.get(
            fake_monday.authorize_url,
            params={
                "client_id": CLIENT_ID,
                "redirect_uri": REDIRECT,
                "code_challenge": verifier,
                "code_challenge_method": "plain",
            },
            allow_redirects=False,
        ) as r:
            assert parse_qs(urlsplit(r.headers["Location"]).query)["error"] == ["invalid_request"]
        fake_monday.fake.require_pkce = True
        async with http.get(
            fake_monday.authorize_url,
            params={"client_id": CLIENT_ID, "redirect_uri": REDIRECT},
            allow_redirects=False,
        ) as r:
            assert parse_qs(urlsplit(r.headers["Location"]).query)["error"] == ["invalid_request"]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def test_the_verifier_is_stored_encrypted_and_spent_once(engine: AsyncEngine) -> None:
    """On SQLite and PostgreSQL (the 0003 migration)."""
    cipher = CredentialCipher([ENCRYPTION_KEY])
    now = datetime.now(UTC)
    verifier = "the-verifier-" + "x" * 40
    states = SqlOAuthStates(engine, cipher)
    await states.create(
        state_digest="d" * 64,
        account_id=ACCOUNT,
        user_id=MEMBER,
        now=now,
        expires_at=now + timedelta(minutes=10),
        code_verifier=verifier,
    )
    async with engine.connect() as conn:
        kept = (await conn.execute(select(oauth_states.c.code_verifier_encrypted))).scalar_one()
    assert kept is not None and verifier not in kept and cipher.decrypt(kept) == verifier
    state = await states.consume("d" * 64, now=now)
    assert state is not None and state.code_verifier == verifier
    async with engine.connect() as conn:
        left = (await conn.execute(select(oauth_states.c.code_verifier_encrypted))).scalar_one()
    assert left is None
    assert await states.consume("d" * 64, now=now) is None
