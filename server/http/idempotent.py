"""`Idempotency-Key` for every send surface (REST, `/v2`, automation actions), in one place.

A route hands over who asks, the key, the parsed body and the work; this wrapper checks the
key, runs the work at most once per key and body (`notifications/idempotency.py`), and
answers: the first answer, replayed verbatim with `Idempotent-Replayed: true` after that.
What differs per surface is how a refusal of the key itself (reused with another body,
still in flight) is rendered (`refuse`, or the §8 error envelope when it is not given), and
`recover`: the surface's answer for given ledger rows, the code its work answers with once
its send returned them. It answers a key whose first request was killed before answering,
from the rows that request inserted (notifications/idempotency.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from server.appkeys import SERVICES
from server.errors import ApiError
from server.http.respond import encoded_json_response
from server.notifications.idempotency import REPLAYED_HEADERS, Recover, body_digest, check_key

Work = Callable[[], Awaitable[tuple[int, Any]]]


async def idempotent(
    request: web.Request,
    *,
    account_id: str,
    user_id: str,
    key: str | None,
    body: Any,
    work: Work,
    recover: Recover,
    refuse: Callable[[ApiError], web.Response] | None = None,
    validate: bool = True,
) -> web.Response:
    """`work()` answers `(status, json body)`; without a key it simply runs.

    `validate=False` is for keys the route built and checked itself (an action's run id).
    An `ApiError` raised by `work` propagates unchanged (and is kept as the key's answer).
    """
    if key is None:
        status, answer = await work()
        return encoded_json_response(answer, status=status)
    try:
        if validate:
            check_key(key)
        status, answer, replayed = await request.app[SERVICES].idempotency.once(
            account_id, user_id, key, body_digest(body), work, recover
        )
    except ApiError as error:
        if refuse is None:
            raise
        return refuse(error)
    headers = REPLAYED_HEADERS if replayed else None
    return encoded_json_response(answer, status=status, headers=headers)
