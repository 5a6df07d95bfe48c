"""Contract §3 over HTTP and §8: 401 envelopes, 413, malformed JSON, no token in errors."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from server.logs import RedactingJsonFormatter, redact
from tests.conftest import OLD_CLIENT_SECRET


async def code(response: Any) -> str:
    body = await response.json()
    assert set(body) == {"errors"}
    return str(body["errors"][0]["extensions"]["code"])


async def test_api_route_without_token_is_401_token_missing(client: Any) -> None:
    response = await client.get("/installation")
    assert response.status == 401
    assert await code(response) == "TOKEN_MISSING"


async def test_api_routes_never_read_the_query_string(client: Any, mint: Any) -> None:
    response = await client.get("/installation", params={"sessionToken": mint()})
    assert response.status == 401
    assert await code(response) == "TOKEN_MISSING"


async def test_expired_token_over_http(client: Any, mint: Any) -> None:
    response = await client.get("/installation", headers={"Authorization": mint(lifetime=-60)})
    assert response.status == 401
    assert await code(response) == "TOKEN_EXPIRED"


async def test_bearer_prefix_and_old_secret_accepted(client: Any, mint: Any) -> None:
    response = await client.get(
        "/installation", headers={"Authorization": "Bearer " + mint(secret=OLD_CLIENT_SECRET)}
    )
    assert response.status == 200


async def test_error_messages_never_echo_the_token(client: Any, mint: Any) -> None:
    token = mint(lifetime=-60)
    response = await client.get("/installation", headers={"Authorization": token})
    assert token not in await response.text()


async def test_body_over_one_mebibyte_is_413(client: Any, mint: Any) -> None:
    response = await client.post(
        "/notifications",
        data=b"[" + b" " * (1024 * 1024 + 10) + b"]",
        headers={"Authorization": mint()},
    )
    assert response.status == 413
    assert await code(response) == "PAYLOAD_TOO_LARGE"


async def test_malformed_json_is_400_invalid_payload(client: Any, mint: Any) -> None:
    response = await client.post(
        "/notifications", data=b'{"recipient": ', headers={"Authorization": mint()}
    )
    assert response.status == 400
    assert await code(response) == "INVALID_PAYLOAD"


async def test_responses_carry_a_request_id(client: Any) -> None:
    response = await client.get("/healthz")
    assert len(response.headers["X-Request-Id"]) >= 8


@pytest.mark.parametrize(
    "line",
    [
        "Authorization: eyJhbGciOiJIUzI1NiJ9.eyJkYXQiOnt9fQ.c2lnbmF0dXJlc2lnbmF0dXJl",
        "calling monday with authorization=personal-key-abcdef123456",
        'body {"api_key": "dev-personal-key-user-1"}',
        "refresh_token=r-123456789&client_secret=s3cr3t",
        "stored gAAAAABlZ3Jvd2luZ19mZXJuZXRfdG9rZW5fdmFsdWU=",
    ],
)
def test_redaction_hides_credentials(line: str) -> None:
    out = redact(line)
    for secret in (
        "eyJkYXQiOnt9fQ",
        "personal-key-abcdef123456",
        "dev-personal-key-user-1",
        "r-123456789",
        "s3cr3t",
        "Z3Jvd2luZ19mZXJuZXRf",
    ):
        assert secret not in out
    assert "REDACTED" in out


def test_json_log_lines_are_redacted() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token=%s", ("abc123secret",), None)
    assert "abc123secret" not in RedactingJsonFormatter().format(record)


def test_python_warnings_are_json_log_lines_too() -> None:
    """PyJWT warns about a client secret under 32 bytes on every verification; in production
    that warning printed plain text (and the source line) between the JSON log lines."""
    import json
    import subprocess
    import sys

    script = (
        "import jwt, warnings\n"
        "from server.logs import configure_logging\n"
        "configure_logging('json')\n"
        "jwt.encode({'a': 1}, 'short-secret', algorithm='HS256')\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "PyJWT gave no warning to check"
    records = [json.loads(line) for line in lines]  # every line is one JSON record
    assert any(
        "HMAC key" in record["msg"] and record["logger"] == "py.warnings" for record in records
    )
