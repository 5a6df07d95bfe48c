"""Automation short-lived tokens, in memory only (contract §10: never stored)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class ShortLivedTokens:
    """Automation short-lived tokens, kept in memory only for the few minutes they live."""

    lifetime_seconds: float = 300.0
    _tokens: dict[int, tuple[str, float]] = field(default_factory=dict)

    def put(self, row_id: int, token: str) -> None:
        self._tokens[row_id] = (token, time.monotonic() + self.lifetime_seconds)

    def get(self, row_id: int) -> str | None:
        entry = self._tokens.get(row_id)
        if entry is None or entry[1] < time.monotonic():
            self._tokens.pop(row_id, None)
            return None
        return entry[0]

    def drop(self, row_id: int) -> None:
        self._tokens.pop(row_id, None)
