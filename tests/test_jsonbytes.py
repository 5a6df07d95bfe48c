"""server/jsonbytes.py: orjson where it can, the standard library where orjson refuses, and
the same meaning either way."""

from __future__ import annotations

import json
import math

import pytest

from server import jsonbytes

ORDINARY = {"query": "mutation { x }", "variables": {"text": 'héllo ✓ \n"q"', "n": [1, 2.5]}}


@pytest.mark.parametrize(
    "value",
    [
        ORDINARY,
        {"text": "lone \ud800 surrogate"},  # orjson refuses it
        {"big": 2**70},  # over 64 bits: orjson refuses it
        [None, True, False, "", {}],
    ],
)
def test_dumps_parses_back_as_the_standard_library_does(value: object) -> None:
    encoded = jsonbytes.dumps(value)
    assert isinstance(encoded, bytes)
    assert json.loads(encoded) == json.loads(json.dumps(value)) == value
    encoded.decode("utf-8")  # always valid UTF-8 (a lone surrogate is escaped)


def test_loads_reads_what_the_standard_library_reads() -> None:
    raw = json.dumps(ORDINARY, ensure_ascii=False).encode()
    assert jsonbytes.loads(raw, raw.decode()) == ORDINARY
    # orjson refuses these; the standard library reads them, and so do we.
    raw = b'{"n": NaN, "big": 123456789012345678901234567890}'
    read = jsonbytes.loads(raw, raw.decode())
    assert math.isnan(read["n"]) and read["big"] == 123456789012345678901234567890
    broken = b'{"text": "\xff"}'  # invalid UTF-8: read as the replaced text
    assert jsonbytes.loads(broken, broken.decode("utf-8", errors="replace")) == {"text": "\ufffd"}


def test_loads_refuses_what_is_not_json() -> None:
    with pytest.raises(ValueError):
        jsonbytes.loads(b"<html>", "<html>")
