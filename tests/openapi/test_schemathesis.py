"""schemathesis against the live server, driven by the document it serves at /openapi.json.

Every operation gets generated requests (valid and invalid, deterministic) with a real token of
the family the route accepts; the checks prove no 5xx, only documented status codes and
content types, and bodies that match the documented schemas.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.http.openapi import build_document
from server.ids import InvalidMondayId, monday_id
from server.token_mint import mint_integration, mint_lifecycle, mint_session
from tests.conftest import ACCOUNT, CLIENT_ID, CLIENT_SECRET, INSTALLER, SIGNING_SECRET
from tests.openapi.live import SHORT_LIVED, LiveServer, insert_awaiting_row, live_server

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SEEN: dict[str, Counter[int]] = {}
PUBLIC_BASE_URL = "http://127.0.0.1:8080"  # tests.conftest.make_settings


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("schemathesis")) as server:
        # A few ledger rows, so reads and writes by id find something.
        token = session_token()
        for text in ("first", "second", "third"):
            answer = requests.post(
                server.url + "/notifications",
                json={"recipient": "12", "message": text, "collection": "Project", "item": "1"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
        yield server


# The document the server serves (test_served_document_is_the_spec proves they are equal).
# Loaded at import, not from a fixture: schemathesis' lazy `from_fixture` loader reads
# pytest's private `Function._nodeid`, which pytest 9 removed.
schema = schemathesis.openapi.from_dict(build_document())
schema.config.generation.update(max_examples=25, deterministic=True)


def test_served_document_is_the_spec(live: LiveServer) -> None:
    answer = requests.get(live.url + "/openapi.json", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json() == build_document()


def session_token() -> str:
    return mint_session(
        CLIENT_SECRET,
        account_id=ACCOUNT,
        user_id=INSTALLER,
        client_id=CLIENT_ID,
        is_admin=True,
        lifetime=600,
    )


def _event_account(body: Any) -> str:
    """The account a generated lifecycle body names, if it is a valid id (else ACCOUNT)."""
    data = body.get("data") if isinstance(body, dict) else None
    value = data.get("account_id") if isinstance(data, dict) else None
    try:
        return monday_id(value)
    except InvalidMondayId:
        return ACCOUNT


def token_for(path: str, body: Any = None) -> str:
    """A valid token of the family the route accepts (contract §3); a lifecycle token is
    signed for the account the event names, as monday does (contract §10)."""
    if path == "/monday/lifecycle":
        return mint_lifecycle(
            CLIENT_SECRET,
            account_id=_event_account(body),
            user_id=INSTALLER,
            audience=PUBLIC_BASE_URL + path,
        )
    if path == "/monday/actions/notify":
        return mint_integration(
            SIGNING_SECRET,
            account_id=ACCOUNT,
            user_id=INSTALLER,
            audience=PUBLIC_BASE_URL + path,
            short_lived_token=SHORT_LIVED,
        )
    return session_token()


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case: Any, live: LiveServer) -> None:
    if case.path_parameters and case.path_parameters.get("id") == 1:
        # The documented example id: point it at a fresh row (earlier operations may have
        # archived or deleted every row), awaiting a relay so the relay route accepts it too.
        case.path_parameters["id"] = live.run(insert_awaiting_row(live.app))
    headers = {"Authorization": f"Bearer {token_for(case.path, case.body)}"}
    response = case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS, timeout=30)
    SEEN.setdefault(f"{case.method.upper()} {case.path}", Counter())[response.status_code] += 1


def test_generated_requests_reached_every_handler() -> None:
    """Runs after the generated tests: each operation answered a success at least once, so
    the tokens were accepted and the generated bodies were not all refused at the door."""
    operations = {
        f"{method.upper()} {path}"
        for path, item in build_document()["paths"].items()
        for method in item
        if method in {"get", "put", "post", "patch", "delete"}
    }
    assert operations <= set(SEEN)  # (schemathesis also probes undocumented methods: 405)
    without_success = {
        op: dict(SEEN[op]) for op in operations if not any(200 <= c < 300 for c in SEEN[op])
    }
    assert without_success == {}, without_success
