"""The one error envelope of contract §8 and the exception that produces it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field
from typing_extensions import TypedDict

# Every `extensions.code` our own envelope carries (monday's codes travel in `last_error`,
# `/v2` and action errors instead). `GET /openapi.json` lists exactly these.
ErrorCode = Literal[
    # contract §3: refused tokens (401)
    "TOKEN_MISSING",
    "TOKEN_MALFORMED",
    "TOKEN_EXPIRED",
    "TOKEN_INVALID_SIGNATURE",
    "TOKEN_WRONG_APP",
    "TOKEN_NOT_YET_VALID",
    # contract §6-§8
    "INVALID_PAYLOAD",
    "INVALID_QUERY",
    "FORBIDDEN",
    "ROUTE_NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "PAYLOAD_TOO_LARGE",
    "IDEMPOTENCY_KEY_REUSED",
    "IDEMPOTENCY_IN_FLIGHT",
    "IDEMPOTENCY_KEY_ABANDONED",
    "REQUESTS_EXCEEDED",
    "GRAPHQL_VALIDATION",
    "QUERY_TOO_EXPENSIVE",
    # contract §4-§5: installation, credentials, the sender decision
    "APP_NOT_INSTALLED",
    "NO_CREDENTIAL",
    "SENDER_NOT_ALLOWED",
    "NOT_AWAITING_CLIENT",
    "API_KEY_REJECTED",
    "MONDAY_UNAVAILABLE",
    # what the HTTP layer refuses before any route runs (server/http/protocol.py)
    "REQUEST_HEADER_TOO_LARGE",
    "BAD_REQUEST",
    "TIMEOUT",
    # the process
    "SERVICE_UNAVAILABLE",
    "HTTP_ERROR",
    "INTERNAL_SERVER_ERROR",
]


class ErrorExtensions(TypedDict):
    """`code` always; some errors add details (`field`, `reason`, limits)."""

    code: ErrorCode


class ErrorEntry(TypedDict):
    message: str
    extensions: ErrorExtensions


class ErrorEnvelope(TypedDict):
    """Contract §8: the one error envelope of every JSON route."""

    errors: Annotated[list[ErrorEntry], Field(min_length=1)]


class ApiError(Exception):
    """An error a caller should see: HTTP status, stable code, a message that says what to do."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        extensions: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extensions = extensions or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, **self.extensions)


def error_body(code: str, message: str, **extensions: Any) -> dict[str, Any]:
    """`{"errors": [{"message", "extensions": {"code", ...}}]}`."""
    return {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}


def error_response(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=error.headers)


def invalid_payload(reason: str, **extensions: Any) -> ApiError:
    """400 INVALID_PAYLOAD, in Directus' words: 'Invalid payload. <reason>.'"""
    return ApiError(
        400,
        "INVALID_PAYLOAD",
        f"Invalid payload. {reason.rstrip('.')}.",
        extensions={"reason": reason, **extensions},
    )


def invalid_query(reason: str) -> ApiError:
    return ApiError(400, "INVALID_QUERY", f"Invalid query. {reason.rstrip('.')}.")


def forbidden(message: str = "You don't have permission to access this.") -> ApiError:
    return ApiError(403, "FORBIDDEN", message)
