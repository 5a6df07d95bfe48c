"""The fake monday's OAuth endpoints: `GET /oauth2/authorize` and `POST /oauth2/token`.

Auto-consent with monday's newer PKCE flow (S256 only); see `fake_monday.py` for the
behaviour each parameter selects.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

from server.dev.fake_monday_http import record_request
from server.dev.fake_monday_state import FAKE_MONDAY

# RFC 7636 §4.1: 43 to 128 unreserved characters.
CODE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


async def oauth_authorize(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE_MONDAY]
    await record_request(request, fake)
    query = request.query
    redirect_uri = query.get("redirect_uri", "")
    if not redirect_uri.startswith(("http://", "https://")):
        return web.Response(status=400, text="invalid_request: redirect_uri is required")
    client_id = query.get("client_id", "")
    state = {"state": query["state"]} if "state" in query else {}
    if not client_id or (fake.clients and client_id not in fake.clients):
        raise web.HTTPFound(_with_query(redirect_uri, {"error": "unauthorized_client", **state}))
    challenge = query.get("code_challenge")
    if (challenge and query.get("code_challenge_method") != "S256") or (
        not challenge and fake.require_pkce
    ):
        # monday's newer flow: PKCE is required, and S256 is the only method.
        raise web.HTTPFound(_with_query(redirect_uri, {"error": "invalid_request", **state}))
    if query.get("deny"):
        raise web.HTTPFound(_with_query(redirect_uri, {"error": "access_denied", **state}))
    user_id = query.get("user_id") or (fake.default_oauth_user or ("", ""))[0]
    user = fake.users.get(user_id)
    if user is None:
        return web.Response(status=400, text=f"unknown user {user_id!r} in the fake monday")
    account_id = query.get("account_id") or user.account_id
    code = fake.issue_oauth_code(
        user.id,
        account_id,
        client_id=client_id,
        redirect_uri=redirect_uri,
        scope=query.get("scope") or "me:read notifications:write boards:read",
        code_challenge=challenge or None,
    )
    raise web.HTTPFound(_with_query(redirect_uri, {"code": code, **state}))


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def _verifier_matches(challenge: str, verifier: str | None) -> bool:
    """RFC 7636 §4.6 for S256: BASE64URL(SHA256(verifier)) == challenge."""
    if verifier is None or not CODE_VERIFIER.match(verifier):
        return False
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") == challenge


async def oauth_token(request: web.Request) -> web.Response:
    fake = request.app[FAKE_MONDAY]
    record = await record_request(request, fake)
    form = record.body if isinstance(record.body, Mapping) else {}
    values = {k: str(v) for k, v in form.items() if v is not None}
    client_id, client_secret = values.get("client_id", ""), values.get("client_secret", "")
    if fake.clients and client_secret not in fake.clients.get(client_id, set()):
        return _oauth_error(401, "invalid_client", "Client authentication failed")
    grant = values.get("grant_type", "authorization_code")
    if grant == "authorization_code":
        if not values.get("code"):
            return _oauth_error(400, "invalid_request", "code is required")
        code = fake.take_code(values["code"])
        if code is None or (code.client_id and code.client_id != client_id):
            return _oauth_error(400, "invalid_grant", "The code is invalid, expired or used")
        if code.redirect_uri and values.get("redirect_uri") != code.redirect_uri:
            return _oauth_error(400, "invalid_grant", "redirect_uri does not match")
        if code.code_challenge and not _verifier_matches(
            code.code_challenge, values.get("code_verifier")
        ):
            return _oauth_error(400, "invalid_grant", "code_verifier does not match the challenge")
        return web.json_response(fake.grant_tokens(code.user_id, code.account_id, code.scope))
    if grant == "refresh_token" and fake.issue_refresh_tokens:
        found = fake.take_refresh_token(values.get("refresh_token", ""))
        if found is None:
            return _oauth_error(400, "invalid_grant", "The refresh token is invalid or used")
        return web.json_response(fake.grant_tokens(*found))
    return _oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")
