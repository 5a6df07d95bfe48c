"""The RateLimit headers' split: the plain split taken for headers without escapes gives what
the character-by-character split gives, quoted separators included."""

from __future__ import annotations

import pytest

from server.monday.ratelimit import _split_outside_quotes, _split_slowly, parse_structured_list

HEADERS = [
    '"minuteRate";q=5000;w=60, "concurrency";q=250;qu="concurrent-requests"',
    '"minuteRate";r=4999, "concurrency";r=249, "complexityMinute";r=4950000;t=45',
    '"a,b";x=1, "c;d";y="e,f;g"',
    '"a\\"b";x=1, c',
    '"unbalanced;x=1, y',
    "",
]


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("sep", [",", ";"])
def test_plain_split_agrees_with_the_careful_one(header: str, sep: str) -> None:
    assert _split_outside_quotes(header, sep) == _split_slowly(header, sep)


def test_quoted_separators_stay_inside_their_item() -> None:
    assert parse_structured_list('"a,b";x=1, "c;d";y="e,f;g"') == [
        ("a,b", {"x": 1}),
        ("c;d", {"y": "e,f;g"}),
    ]
