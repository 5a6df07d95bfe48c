"""The one error envelope of contract §8 and the exception that produces it."""

from __future__ import annotations

from typing import Any

from aiohttp import web


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
