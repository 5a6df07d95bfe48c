"""The RateLimit headers' split: the plain split taken for headers without escapes gives what
the character-by-character split gives, quoted separators included."""

from __future__ import annotations

import pytest

from server.monday.ratelimit import (
    _careful_items,
    _plain_items,
    _split_outside_quotes,
    _split_slowly,
    parse_structured_list,
)

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


PLAIN_AND_NOT = [
    *HEADERS,
    '"minuteRate";r=0;t=60',
    ' "minuteRate";r=12 ,  "concurrency";r=3',
    '"minuteRate";r=-1',  # not a plain whole number: the careful parser decides
    '"minuteRate";r=1.5;t=2',
    '"";r=1, "x";r=2',  # an empty name is dropped
    '"minuteRate";r=1;r=2',  # the last value of a key wins
    '"minuteRate";flag, "b";r=1',
    '"minuteRate";q=5000;w=60;qu="calls"',
]


@pytest.mark.parametrize("header", PLAIN_AND_NOT)
def test_the_plain_reading_gives_what_the_careful_one_gives(header: str) -> None:
    assert parse_structured_list(header) == _careful_items(header)


def test_a_plain_header_is_read_by_the_plain_reading() -> None:
    header = '"minuteRate";r=4999, "concurrency";r=249, "complexityMinute";r=4950000;t=45'
    assert _plain_items(header) == [
        ("minuteRate", {"r": 4999}),
        ("concurrency", {"r": 249}),
        ("complexityMinute", {"r": 4950000, "t": 45}),
    ]
    assert _plain_items('"a";x="y"') is None  # a quoted value: the careful parser's
