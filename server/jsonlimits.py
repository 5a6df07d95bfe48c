"""Decoding JSON from callers with its nesting bounded (contract §10).

Python's json decoder recurses once per nesting level: a body of ~1,000 `[` exhausts the
stack (RecursionError, a 500), and anything that walks the decoded value afterwards
(pydantic, the idempotency digest, the filter compiler) recurses again. So the depth is
measured first, on the raw text and without recursion, and anything deeper than
`MAX_DEPTH` is refused before the decoder sees it.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64

# A JSON string, escapes included: its brackets are text, not nesting.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


class JsonTooDeep(ValueError):
    """The JSON nests deeper than allowed; a ValueError, like any other undecodable JSON."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON is nested deeper than {max_depth} levels")
        self.max_depth = max_depth


def nesting(raw: bytes | str) -> int:
    """How deep the arrays and objects of `raw` nest (0 for a scalar), in linear time."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    # Each opening bracket is +1, each closing one -1; the running sum's peak is the depth.
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads(raw)`, or `JsonTooDeep` when it nests deeper than `max_depth` levels.

    Raises what `json.loads` raises (JSONDecodeError, UnicodeDecodeError) for bad JSON."""
    if nesting(raw) > max_depth:
        raise JsonTooDeep(max_depth)
    try:
        return json.loads(raw)
    except RecursionError:  # unreachable after the check above; never a 500 if it is not
        raise JsonTooDeep(max_depth) from None
