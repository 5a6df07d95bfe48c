"""Reading monday's `RateLimit` and `RateLimit-Policy` headers (monday-platform.md §5.5).

monday sends them on every response in the IETF draft's structured-field style::

    RateLimit-Policy: "minuteRate";q=5000;w=60, "concurrency";q=250;qu="concurrent-requests"
    RateLimit: "minuteRate";r=4999, "concurrency";r=249, "complexityMinute";r=4950000;t=45

The parser is forgiving: a malformed item is skipped, never raised, because a header we cannot
read must not turn a delivered notification into a failure.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

ParamValue = int | str | bool


@dataclass(frozen=True)
class RateLimitPolicy:
    """One policy of `RateLimit-Policy`: quota `q` per window `w` seconds, unit `qu`."""

    name: str
    quota: int | None = None
    window_seconds: int | None = None
    unit: str | None = None


@dataclass(frozen=True)
class RateLimitState:
    """One item of `RateLimit`: `r` remaining and `t` seconds until the window resets."""

    name: str
    remaining: int | None = None
    reset_seconds: int | None = None


@dataclass(frozen=True)
class RateLimitInfo:
    """Both headers of one response, keyed by policy name (`minuteRate`, `concurrency`, ...)."""

    policies: Mapping[str, RateLimitPolicy] = field(default_factory=dict)
    states: dict[str, RateLimitState] = field(default_factory=dict)

    def remaining(self, name: str) -> int | None:
        state = self.states.get(name)
        return state.remaining if state else None

    def reset_seconds(self, name: str) -> int | None:
        state = self.states.get(name)
        return state.reset_seconds if state else None

    def exhausted(self) -> list[str]:
        """Names of the policies with nothing left (`r=0`)."""
        states = self.states.values()
        return [s.name for s in states if s.remaining is not None and s.remaining <= 0]

    def retry_after_seconds(self) -> int | None:
        """The longest reset among exhausted policies, if monday said when they reset."""
        waits = [
            s.reset_seconds
            for s in self.states.values()
            if s.remaining is not None and s.remaining <= 0 and s.reset_seconds is not None
        ]
        return max(waits) if waits else None

    @property
    def empty(self) -> bool:
        return not self.policies and not self.states


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    if "\\" not in text:
        # Every answer carries these headers: without escapes, a plain split is right when no
        # piece has an odd number of quotes (no separator fell inside a quoted string).
        parts = text.split(sep)
        if all(part.count('"') % 2 == 0 for part in parts):
            return parts
    return _split_slowly(text, sep)


def _split_slowly(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quoted:
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _bare(value: str) -> ParamValue | None:
    value = value.strip()
    if not value:
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if value in ("?1", "?0"):
        return value == "?1"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return int(float(value))
    except ValueError:
        return value


# An item of the shape every monday answer's `RateLimit` has: a plain quoted name and whole
# number parameters (`"minuteRate";r=4999;t=45`). Anything else takes the careful parser.
_PLAIN_ITEM = re.compile(r'\s*"([^"\\]+)"((?:;[A-Za-z0-9_.*-]+=[0-9]+)*)\s*')


def parse_structured_list(header: str | None) -> list[tuple[str, dict[str, ParamValue]]]:
    """`"a";x=1, "b";y="z"` -> `[("a", {"x": 1}), ("b", {"y": "z"})]`; bad items are dropped."""
    if not header:
        return []
    plain = _plain_items(header)
    return plain if plain is not None else _careful_items(header)


def _plain_items(header: str) -> list[tuple[str, dict[str, ParamValue]]] | None:
    """The header read with one regular expression per item, if every item is plain (what
    `_careful_items` would read from it, item for item); None otherwise."""
    items: list[tuple[str, dict[str, ParamValue]]] = []
    for raw_item in header.split(","):
        match = _PLAIN_ITEM.fullmatch(raw_item)
        if match is None:
            return None
        params: dict[str, ParamValue] = {}
        for piece in match.group(2).split(";")[1:]:
            key, _, value = piece.partition("=")
            params[key] = int(value)
        items.append((match.group(1), params))
    return items


def _careful_items(header: str) -> list[tuple[str, dict[str, ParamValue]]]:
    items: list[tuple[str, dict[str, ParamValue]]] = []
    for raw_item in _split_outside_quotes(header, ","):
        pieces = _split_outside_quotes(raw_item.strip(), ";")
        name = _bare(pieces[0])
        if not isinstance(name, str) or not name:
            continue
        params: dict[str, ParamValue] = {}
        for piece in pieces[1:]:
            key, sep, value = piece.partition("=")
            key = key.strip()
            if not key:
                continue
            parsed = _bare(value) if sep else True
            if parsed is not None:
                params[key] = parsed
        items.append((name, params))
    return items


def _int(value: ParamValue | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: ParamValue | None) -> str | None:
    return value if isinstance(value, str) else None


def parse_rate_limit(ratelimit: str | None, policy: str | None) -> RateLimitInfo:
    """Both headers as one typed value; absent or unreadable headers give an empty result."""
    policies = _policies(policy)
    states = {
        name: RateLimitState(
            name=name,
            remaining=_int(params.get("r")),
            reset_seconds=_int(params.get("t")),
        )
        for name, params in parse_structured_list(ratelimit)
    }
    return RateLimitInfo(policies=policies, states=states)


@functools.lru_cache(maxsize=64)
def _policies(policy: str | None) -> Mapping[str, RateLimitPolicy]:
    """`RateLimit-Policy` read once per distinct value: it is the same on every answer of an
    account's plan, so only `RateLimit` (its counts change) is read on every answer.
    (Read-only: the mapping is shared by every answer that carried the same header.)"""
    return MappingProxyType(
        {
            name: RateLimitPolicy(
                name=name,
                quota=_int(params.get("q")),
                window_seconds=_int(params.get("w")),
                unit=_str(params.get("qu")),
            )
            for name, params in parse_structured_list(policy)
        }
    )
