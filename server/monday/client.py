"""Our client for monday's GraphQL API (monday-platform.md §5).

Every request sends the raw credential in `Authorization` (no `Bearer`), `API-Version` and
JSON; every value travels as a GraphQL variable, never pasted into the query text. Transport
failures are told apart by whether the request could have reached monday: a refused connection
proves nothing was sent (safe to retry), a timeout after sending proves nothing (unknown).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from server import jsonbytes
from server.ids import monday_id_or_none
from server.monday.error_body import error_entries
from server.monday.outcome import (
    AnswerView,
    MondayAuthError,
    MondayError,
    MondayNoAnswer,
    MondayUnreachable,
    SendOutcome,
    classify_answer,
    no_answer_outcome,
    scrub,
    scrubbed,
    unreachable_outcome,
)
from server.monday.ratelimit import RateLimitInfo, parse_rate_limit

CREATE_NOTIFICATION = (
    "mutation ($user_id: ID!, $target_id: ID!, $text: String!, "
    "$target_type: NotificationTargetType!) { create_notification(user_id: $user_id, "
    "target_id: $target_id, text: $text, target_type: $target_type) { id text } }"
)
ME_QUERY = "query { me { id name email account { id } } }"
CONNECT_TIMEOUT_CAP = 10.0


@dataclass(frozen=True)
class NotificationRequest:
    """One `create_notification`: recipient, target and text as monday names them."""

    user_id: str
    target_id: str
    text: str
    target_type: str = "Project"


@dataclass(frozen=True)
class MondayUser:
    """Who a credential belongs to (`me`)."""

    id: str
    name: str
    email: str
    account_id: str


@dataclass(frozen=True)
class MondayResponse:
    """monday's answer as received: status, headers, and the parsed body if it was JSON."""

    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or None when the body was not JSON
    text: str = ""
    rate_limit: RateLimitInfo = field(default_factory=RateLimitInfo)

    @property
    def request_id(self) -> str | None:
        if isinstance(self.body, Mapping):
            extensions = self.body.get("extensions")
            if isinstance(extensions, Mapping) and extensions.get("request_id") is not None:
                return str(extensions["request_id"])
        return self.headers.get("x-request-id")

    @property
    def data(self) -> Any:
        return self.body.get("data") if isinstance(self.body, Mapping) else None

    @property
    def errors(self) -> list[Any]:
        """The raw `errors` array (empty when there is none)."""
        if isinstance(self.body, Mapping) and isinstance(self.body.get("errors"), list):
            return list(self.body["errors"])
        return []

    @property
    def account_id(self) -> str | None:
        if isinstance(self.body, Mapping) and self.body.get("account_id") is not None:
            return str(self.body["account_id"])
        return None

    def answer(self) -> AnswerView:
        return AnswerView(
            http_status=self.status,
            body=self.body,
            retry_after=self.headers.get("retry-after"),
            request_id=self.request_id,
            rate_limit_retry=self.rate_limit.retry_after_seconds(),
        )


@functools.lru_cache(maxsize=128)  # counts up to the batch size (at most 100)
def notification_document(count: int) -> str:
    """One mutation with `count` aliased fields `n0..`, each with its own variables."""
    definitions: list[str] = []
    fields: list[str] = []
    for i in range(count):
        definitions.append(
            f"$user_id_{i}: ID!, $target_id_{i}: ID!, $text_{i}: String!, "
            f"$target_type_{i}: NotificationTargetType!"
        )
        fields.append(
            f"n{i}: create_notification(user_id: $user_id_{i}, target_id: $target_id_{i}, "
            f"text: $text_{i}, target_type: $target_type_{i}) {{ id text }}"
        )
    return f"mutation ({', '.join(definitions)}) {{ {' '.join(fields)} }}"


def notification_variables(items: Sequence[NotificationRequest]) -> dict[str, str]:
    variables: dict[str, str] = {}
    for i, item in enumerate(items):
        variables[f"user_id_{i}"] = item.user_id
        variables[f"target_id_{i}"] = item.target_id
        variables[f"text_{i}"] = item.text
        variables[f"target_type_{i}"] = item.target_type
    return variables


def notification_payload(items: Sequence[NotificationRequest]) -> tuple[str, dict[str, str]]:
    """The exact document and variables sent for `items`: the one-field mutation for one
    notification, aliased fields `n0..` for several. The Idempotency-Key is derived from it."""
    if len(items) == 1:
        item = items[0]
        variables = {
            "user_id": item.user_id,
            "target_id": item.target_id,
            "text": item.text,
            "target_type": item.target_type,
        }
        return CREATE_NOTIFICATION, variables
    return notification_document(len(items)), notification_variables(items)


def notification_aliases(count: int) -> list[str]:
    return ["create_notification"] if count == 1 else [f"n{i}" for i in range(count)]


class MondayClient:
    """Calls monday's GraphQL endpoint over a shared `aiohttp.ClientSession`."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        api_url: str,
        api_version: str,
        timeout_seconds: float,
    ) -> None:
        self._http = http
        self.api_url = api_url
        self.api_version = api_version
        self.timeout_seconds = timeout_seconds
        # Built once: every call sends the same (aiohttp copies them into each request).
        self._timeout = aiohttp.ClientTimeout(
            total=timeout_seconds, sock_connect=min(timeout_seconds, CONNECT_TIMEOUT_CAP)
        )
        self._headers = {
            "API-Version": api_version,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    @property
    def api_url(self) -> str:
        return self._api_url

    @api_url.setter
    def api_url(self, url: str) -> None:
        self._api_url = url
        self._url = URL(url)  # parsed once, not on every call

    async def execute(
        self,
        token: str,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> MondayResponse:
        """POST one document; raise `MondayUnreachable` or `MondayNoAnswer` on transport failure.

        Any HTTP answer, error or not, is returned as a `MondayResponse` for the caller to read.
        """
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = dict(variables)
        headers = {**self._headers, "Authorization": token}
        if idempotency_key is not None:
            # monday replays the first answer to this key for 30 minutes (contract §11).
            headers["Idempotency-Key"] = idempotency_key
        body = jsonbytes.dumps(payload)
        try:
            async with self._http.post(
                self._url, data=body, headers=headers, timeout=self._timeout
            ) as response:
                raw = await response.read()
                status = response.status
                response_headers = {k.lower(): v for k, v in response.headers.items()}
        except aiohttp.ClientConnectorError as exc:
            raise MondayUnreachable(
                f"Could not connect to monday at {self.api_url}.", code="MONDAY_UNREACHABLE"
            ) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise MondayUnreachable(
                "Connecting to monday timed out.", code="MONDAY_UNREACHABLE"
            ) from exc
        except TimeoutError as exc:
            raise MondayNoAnswer(
                f"monday did not answer within {self.timeout_seconds:g} s.", code="NO_ANSWER"
            ) from exc
        except aiohttp.ClientError as exc:
            raise MondayNoAnswer(
                f"The connection to monday broke ({type(exc).__name__}).", code="NO_ANSWER"
            ) from exc
        text = raw.decode("utf-8", errors="replace")
        try:
            parsed: Any = jsonbytes.loads(raw, text) if text.strip() else None
        except ValueError:
            parsed = None
        return MondayResponse(
            status=status,
            headers=response_headers,
            body=parsed,
            text=text,
            rate_limit=parse_rate_limit(
                response_headers.get("ratelimit"), response_headers.get("ratelimit-policy")
            ),
        )

    async def create_notification(
        self, token: str, *, user_id: str, target_id: str, text: str, target_type: str
    ) -> SendOutcome:
        """Send one notification and classify the answer (contract §6)."""
        variables = {
            "user_id": user_id,
            "target_id": target_id,
            "text": text,
            "target_type": target_type,
        }
        outcomes = await self._send(token, CREATE_NOTIFICATION, variables, ["create_notification"])
        return outcomes[0]

    async def create_notifications(
        self, token: str, items: Sequence[NotificationRequest]
    ) -> list[SendOutcome]:
        """Send several notifications in ONE document (aliases `n0..`); one outcome per item.

        An error whose `path` names one alias fails only that item.
        """
        if not items:
            return []
        aliases = [f"n{i}" for i in range(len(items))]
        return await self._send(
            token, notification_document(len(items)), notification_variables(items), aliases
        )

    async def send_notifications(
        self, token: str, items: Sequence[NotificationRequest], *, idempotency_key: str
    ) -> list[SendOutcome]:
        """Send `items` as `notification_payload` builds them, with monday's Idempotency-Key:
        the same key and items on a retry get monday's first answer back, never a second
        notification. One outcome per item."""
        if not items:
            return []
        query, variables = notification_payload(items)
        return await self._send(
            token,
            query,
            variables,
            notification_aliases(len(items)),
            idempotency_key=idempotency_key,
        )

    async def _send(
        self,
        token: str,
        query: str,
        variables: Mapping[str, Any],
        aliases: list[str],
        *,
        idempotency_key: str | None = None,
    ) -> list[SendOutcome]:
        try:
            response = await self.execute(token, query, variables, idempotency_key=idempotency_key)
        except MondayUnreachable:
            return [unreachable_outcome() for _ in aliases]
        except MondayNoAnswer as exc:
            return [no_answer_outcome(exc.message) for _ in aliases]
        return [
            replace(scrubbed(o, [token]), rate_limit=response.rate_limit)
            for o in classify_answer(response.answer(), aliases)
        ]

    async def me(self, token: str) -> MondayUser:
        """Who `token` belongs to; `MondayAuthError` if monday rejects it, else `MondayError`."""
        response = await self.execute(token, ME_QUERY, None)
        entries = error_entries(response.body)
        request_id = response.request_id
        if response.status == 401 or any(e.is_unauthorized for e in entries):
            raise MondayAuthError(
                "monday rejected the credential (unauthorized).",
                code="UNAUTHORIZED",
                http_status=response.status,
                request_id=request_id,
            )
        if entries:
            first = entries[0]
            raise MondayError(
                scrub(f"monday refused `me`: {first.message}", [token]) or "",
                code=first.code or "MONDAY_ERROR",
                http_status=response.status,
                request_id=request_id,
            )
        data = response.data
        me = data.get("me") if isinstance(data, Mapping) else None
        if response.status != 200 or not isinstance(me, Mapping):
            raise MondayError(
                f"monday answered `me` with HTTP {response.status} and no user.",
                code=f"HTTP_{response.status}",
                http_status=response.status,
                request_id=request_id,
            )
        account = me.get("account")
        account_id = account.get("id") if isinstance(account, Mapping) else None
        if account_id is None:
            account_id = response.account_id
        # The one id rule (server/ids.py), so `me` compares equal to a token's ids; an id
        # monday spelled otherwise becomes "" and matches no one.
        return MondayUser(
            id=monday_id_or_none(me.get("id")) or "",
            name=str(me.get("name") or ""),
            email=str(me.get("email") or ""),
            account_id=monday_id_or_none(account_id) or "",
        )


MONDAY = web.AppKey("monday", MondayClient)
