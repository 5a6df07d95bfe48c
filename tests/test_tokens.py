"""Contract §3: every rule of token verification, and every refusal, for each family."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from server.token_mint import mint_integration, mint_session
from server.tokens import (
    TokenError,
    extract_token,
    secret_matches,
    verify_integration,
    verify_lifecycle,
    verify_session,
)
from tests.conftest import CLIENT_ID, CLIENT_SECRET, OLD_CLIENT_SECRET, SIGNING_SECRET

NOW = 1_800_000_000.0
SECRETS = [CLIENT_SECRET, OLD_CLIENT_SECRET]
AUD = "http://127.0.0.1:8080/monday/actions/notify"


def clock() -> float:
    return NOW


def session_claims(**dat: Any) -> dict[str, Any]:
    base = {"client_id": CLIENT_ID, "account_id": 1001, "user_id": 11, "is_admin": True}
    base.update(dat)
    return {"dat": base, "exp": int(NOW) + 300}


def sign(claims: dict[str, Any], secret: str = CLIENT_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


def verify(token: str, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "secrets": SECRETS,
        "client_id": CLIENT_ID,
        "app_id": None,
        "clock": clock,
    }
    options.update(kwargs)
    return verify_session(token, **options)


def code_of(token: str, **kwargs: Any) -> str:
    with pytest.raises(TokenError) as refused:
        verify(token, **kwargs)
    assert refused.value.status == 401
    return refused.value.code


def test_a_valid_session_token_gives_a_typed_session() -> None:
    session = verify(sign(session_claims(is_view_only=False, is_guest=False, app_id=77)))
    assert (session.account_id, session.user_id, session.is_admin) == ("1001", "11", True)
    assert session.app_id == "77" and session.secret_index == 0
    assert session.role == "admin"


def test_numeric_string_ids_are_accepted() -> None:
    session = verify(sign(session_claims(account_id="1001", user_id="11")))
    assert (session.account_id, session.user_id) == ("1001", "11")


def test_rotation_the_older_secret_still_passes_and_is_reported() -> None:
    session = verify(sign(session_claims(), secret=OLD_CLIENT_SECRET))
    assert session.secret_index == 1


def test_expired() -> None:
    claims = session_claims()
    claims["exp"] = int(NOW) - 11
    assert code_of(sign(claims)) == "TOKEN_EXPIRED"


def test_leeway_tolerates_small_clock_skew() -> None:
    claims = session_claims()
    claims["exp"] = int(NOW) - 5
    assert verify(sign(claims), leeway=10).user_id == "11"
    assert code_of(sign(claims), leeway=0) == "TOKEN_EXPIRED"


def test_not_yet_valid() -> None:
    claims = session_claims()
    claims["nbf"] = int(NOW) + 60
    assert code_of(sign(claims)) == "TOKEN_NOT_YET_VALID"
    claims = session_claims()
    claims["iat"] = int(NOW) + 60
    assert code_of(sign(claims)) == "TOKEN_NOT_YET_VALID"


def test_wrong_signature() -> None:
    assert (
        code_of(sign(session_claims(), secret="someone-elses-secret-0123456789abcdef"))
        == "TOKEN_INVALID_SIGNATURE"
    )


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join(
        [part(json.dumps(header).encode()), part(json.dumps(claims).encode()), part(signature)]
    )


def test_alg_none_is_refused() -> None:
    assert code_of(_unsigned({"alg": "none", "typ": "JWT"}, session_claims())) == "TOKEN_MALFORMED"


def test_other_hmac_algorithms_are_refused() -> None:
    assert code_of(sign(session_claims(), alg="HS512")) == "TOKEN_MALFORMED"


def test_an_rs256_header_is_refused() -> None:
    assert (
        code_of(_unsigned({"alg": "RS256", "typ": "JWT"}, session_claims(), b"sig"))
        == "TOKEN_MALFORMED"
    )


def test_a_header_that_lies_about_the_algorithm_is_refused() -> None:
    good = sign(session_claims())
    _, payload, signature = good.split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"HS384","typ":"JWT"}').rstrip(b"=").decode()
    assert code_of(f"{header}.{payload}.{signature}") == "TOKEN_MALFORMED"


def test_missing_exp() -> None:
    claims = session_claims()
    del claims["exp"]
    assert code_of(sign(claims)) == "TOKEN_MALFORMED"


def test_string_exp_is_malformed() -> None:
    claims = session_claims()
    claims["exp"] = "2030-01-01T00:00:00Z"
    assert code_of(sign(claims)) == "TOKEN_MALFORMED"


def test_wrong_client_id() -> None:
    assert code_of(sign(session_claims(client_id="another-app"))) == "TOKEN_WRONG_APP"


def test_wrong_app_id_when_configured() -> None:
    assert code_of(sign(session_claims(app_id=5)), app_id=6) == "TOKEN_WRONG_APP"
    assert verify(sign(session_claims(app_id=6)), app_id=6).app_id == "6"
    assert code_of(sign(session_claims()), app_id=6) == "TOKEN_WRONG_APP"  # no app_id claim at all


@pytest.mark.parametrize("missing", ["account_id", "user_id"])
def test_missing_account_or_user(missing: str) -> None:
    claims = session_claims()
    del claims["dat"][missing]
    assert code_of(sign(claims)) == "TOKEN_MALFORMED"


@pytest.mark.parametrize("bad", [None, "abc", -1, 0, True, 1.5, "12a"])
def test_non_numeric_ids_are_refused(bad: Any) -> None:
    assert code_of(sign(session_claims(user_id=bad))) == "TOKEN_MALFORMED"


def test_no_dat_claim() -> None:
    assert code_of(sign({"exp": int(NOW) + 60})) == "TOKEN_MALFORMED"


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "eyJ.eyJ.", "....", "\u00e9t\u00e9"])
def test_garbage(garbage: str) -> None:
    assert code_of(garbage) == "TOKEN_MALFORMED"


def test_oversized_token() -> None:
    claims = session_claims(padding="x" * 10_000)
    assert code_of(sign(claims)) == "TOKEN_MALFORMED"


def test_no_secret_configured_refuses_everything() -> None:
    assert code_of(sign(session_claims()), secrets=[]) == "TOKEN_INVALID_SIGNATURE"


def test_roles() -> None:
    assert verify(sign(session_claims(is_admin=False, is_view_only=True))).role == "view_only"
    assert verify(sign(session_claims(is_admin=False, is_guest=True))).role == "guest"
    assert verify(sign(session_claims(is_admin=False))).role == "member"
    # Only a literal `true` grants a role: a truthy string does not make an admin.
    assert verify(sign(session_claims(is_admin="yes"))).is_admin is False


def test_extract_token_accepts_raw_and_bearer() -> None:
    assert extract_token("abc.def.ghi") == "abc.def.ghi"
    assert extract_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert extract_token("bearer   abc.def.ghi ") == "abc.def.ghi"
    for empty in (None, "", "   ", "Bearer "):
        with pytest.raises(TokenError) as refused:
            extract_token(empty)
        assert refused.value.code == "TOKEN_MISSING"
        assert "send the session token" in refused.value.message
    with pytest.raises(TokenError) as refused:
        extract_token("Bearer", "integration")
    assert "send the integration token" in refused.value.message


def test_minted_session_matches_mondays_shape() -> None:
    token = mint_session(
        CLIENT_SECRET, account_id=1001, user_id=11, client_id=CLIENT_ID, is_admin=True
    )
    claims = jwt.decode(token, CLIENT_SECRET, algorithms=["HS256"])
    assert isinstance(claims["exp"], int)
    assert claims["dat"]["account_id"] == 1001 and claims["dat"]["user_id"] == 11
    assert verify_session(token, secrets=SECRETS, client_id=CLIENT_ID, app_id=None).is_admin


# ---- lifecycle ----


LIFECYCLE_AUD = "http://127.0.0.1:8080/monday/lifecycle"


def lifecycle(**overrides: Any) -> dict[str, Any]:
    """monday's outbound shape (contract §10), signed with the client secret."""
    claims: dict[str, Any] = {
        "accountId": 1001,
        "userId": 11,
        "aud": LIFECYCLE_AUD,
        "iat": int(NOW),
        "exp": int(NOW) + 300,
    }
    claims.update(overrides)
    return claims


def life_code(token: str) -> str:
    with pytest.raises(TokenError) as refused:
        verify_lifecycle(token, secrets=SECRETS, audience=LIFECYCLE_AUD, clock=clock)
    assert refused.value.status == 401
    return refused.value.code


def test_lifecycle_token_names_its_account() -> None:
    caller = verify_lifecycle(
        sign(lifecycle(accountId="1001")), secrets=SECRETS, audience=LIFECYCLE_AUD, clock=clock
    )
    assert (caller.account_id, caller.user_id, caller.secret_index) == ("1001", "11", 0)
    older = verify_lifecycle(
        sign(lifecycle(), OLD_CLIENT_SECRET), secrets=SECRETS, audience=LIFECYCLE_AUD, clock=clock
    )
    assert older.secret_index == 1


def test_lifecycle_exp_is_required_and_checked() -> None:
    claims = lifecycle()
    del claims["exp"]
    assert life_code(sign(claims)) == "TOKEN_MALFORMED"
    assert life_code(sign(lifecycle(exp=int(NOW) - 100))) == "TOKEN_EXPIRED"
    assert life_code(sign(lifecycle(), secret=SIGNING_SECRET)) == "TOKEN_INVALID_SIGNATURE"


def test_lifecycle_refuses_session_shape_wrong_aud_and_bad_ids() -> None:
    assert life_code(sign(session_claims())) == "TOKEN_MALFORMED"  # `dat`: a session token
    assert life_code(sign(lifecycle(dat={"account_id": 1001}))) == "TOKEN_MALFORMED"
    assert life_code(sign(lifecycle(aud=AUD))) == "TOKEN_WRONG_APP"
    claims = lifecycle()
    del claims["aud"]
    assert life_code(sign(claims)) == "TOKEN_WRONG_APP"
    for bad in ("007", " 1001", "-1", 0, 1001.0, True, ""):
        assert life_code(sign(lifecycle(accountId=bad))) == "TOKEN_MALFORMED", bad


def test_an_outbound_shaped_token_is_not_a_session() -> None:
    # Signed with the client secret like a session token, but shaped like a lifecycle one.
    assert code_of(sign(lifecycle())) == "TOKEN_MALFORMED"
    assert code_of(sign({**session_claims(), "aud": LIFECYCLE_AUD})) == "TOKEN_MALFORMED"
    assert code_of(sign({**session_claims(), "accountId": 1001})) == "TOKEN_MALFORMED"


# ---- integration ----


def integration(**overrides: Any) -> dict[str, Any]:
    claims = {
        "accountId": 1001,
        "userId": 11,
        "aud": AUD,
        "iat": int(NOW),
        "exp": int(NOW) + 300,
        "shortLivedToken": "slt-secret-value",
    }
    claims.update(overrides)
    return claims


def verify_int(token: str, **kwargs: Any) -> Any:
    return verify_integration(token, secrets=[SIGNING_SECRET], audience=AUD, clock=clock, **kwargs)


def int_code(token: str) -> str:
    with pytest.raises(TokenError) as refused:
        verify_int(token)
    return refused.value.code


def test_integration_token_is_verified_with_the_signing_secret() -> None:
    call = verify_int(sign(integration(), secret=SIGNING_SECRET))
    assert (call.account_id, call.user_id, call.short_lived_token) == (
        "1001",
        "11",
        "slt-secret-value",
    )
    assert "slt-secret-value" not in repr(call)
    # The client secret does not sign integration requests.
    assert int_code(sign(integration(), secret=CLIENT_SECRET)) == "TOKEN_INVALID_SIGNATURE"


def test_integration_audience_must_be_our_route() -> None:
    assert (
        int_code(
            sign(
                integration(aud="https://evil.example/monday/actions/notify"), secret=SIGNING_SECRET
            )
        )
        == "TOKEN_WRONG_APP"
    )
    claims = integration()
    del claims["aud"]
    assert int_code(sign(claims, secret=SIGNING_SECRET)) == "TOKEN_WRONG_APP"


def test_integration_requires_exp_and_ids() -> None:
    claims = integration()
    del claims["exp"]
    assert int_code(sign(claims, secret=SIGNING_SECRET)) == "TOKEN_MALFORMED"
    assert int_code(sign(integration(exp=int(NOW) - 100), secret=SIGNING_SECRET)) == "TOKEN_EXPIRED"
    claims = integration()
    del claims["accountId"]
    assert int_code(sign(claims, secret=SIGNING_SECRET)) == "TOKEN_MALFORMED"


def test_minted_integration_token_verifies() -> None:
    token = mint_integration(
        SIGNING_SECRET, account_id=1, user_id=2, audience=AUD, short_lived_token="t"
    )
    call = verify_integration(token, secrets=[SIGNING_SECRET], audience=AUD, clock=time.time)
    assert call.short_lived_token == "t"


def test_only_an_accepted_token_counts_as_a_secret_match() -> None:
    """The retire-a-secret metric counts tokens that passed every check (docs/security.md):
    a well-signed one refused afterwards for its app, its ids or its audience is not a use of
    the secret anyone should keep it for."""

    def matches() -> dict[tuple[str, int], int]:
        return dict(secret_matches)

    before = matches()
    assert code_of(sign(session_claims(client_id="someone-else"))) == "TOKEN_WRONG_APP"
    assert code_of(sign(session_claims(account_id="01"))) == "TOKEN_MALFORMED"
    assert life_code(sign(lifecycle(accountId="007"))) == "TOKEN_MALFORMED"
    assert life_code(sign(lifecycle(aud=AUD))) == "TOKEN_WRONG_APP"
    assert matches() == before

    verify(sign(session_claims()))
    verify_lifecycle(sign(lifecycle()), secrets=SECRETS, audience=LIFECYCLE_AUD, clock=clock)
    after = matches()
    assert after.get(("session", 0), 0) == before.get(("session", 0), 0) + 1
    assert after.get(("lifecycle", 0), 0) == before.get(("lifecycle", 0), 0) + 1


@pytest.mark.parametrize(
    ("dat", "view_only", "guest"),
    [
        ({}, False, False),
        ({"is_view_only": False, "is_guest": None}, False, False),
        ({"is_view_only": True}, True, False),
        ({"is_view_only": 1}, True, False),
        ({"is_view_only": "true"}, True, False),
        ({"is_guest": "1"}, False, True),
        ({"user_kind": "view_only"}, True, False),
        ({"user_kind": "guest", "is_guest": False}, False, True),
        ({"user_kind": "Guest"}, False, True),
        ({"user_kind": "view-only"}, True, False),
        ({"user_kind": "viewOnly"}, True, False),
        ({"user_kind": "member"}, False, False),
    ],
)
def test_restrictions_fail_closed(dat: dict[str, Any], view_only: bool, guest: bool) -> None:
    """A view-only or guest flag that is not exactly false (or a `user_kind` naming it)
    restricts: an unexpected shape must not hand the user a member's rights."""
    session = verify(sign(session_claims(is_admin=False, **dat)))
    assert (session.is_view_only, session.is_guest) == (view_only, guest)


@pytest.mark.parametrize("flag", [1, "true", "yes"])
def test_admin_is_only_json_true(flag: Any) -> None:
    assert verify(sign(session_claims(is_admin=flag))).is_admin is False
