"""monday ids, one way everywhere (contract §10).

A monday id is a positive integer. It arrives as a JSON number or a string of digits, in
tokens (`dat.account_id`, `accountId`), lifecycle bodies, request bodies and monday's own
answers. Every one of those goes through `monday_id`, so the same user or account is
always the same string: comparing a token's account with an event's account, or a
credential's owner with the installer, can never be fooled by two spellings of one id.

The rule: ASCII digits only, no sign, no whitespace, no leading zero, not zero, at most
20 digits. A JSON integer is accepted and written in that form. Anything else is refused,
not repaired: `"007"`, `" 7"`, `"+7"`, `"\u0667"` (Arabic-Indic seven), `7.0`, `true`, `""`.
Refusing `"007"` instead of reading it as `"7"` means no input has a second spelling
that some other code path might compare unnormalised.
"""

from __future__ import annotations

MAX_ID_DIGITS = 20

# What /openapi.json promises for a monday id (`monday_id` below is the rule).
MONDAY_ID_SCHEMA: dict[str, object] = {
    "description": "A monday id: a positive integer, or its digits without leading zeros.",
    "anyOf": [
        {"type": "string", "pattern": f"^[1-9][0-9]{{0,{MAX_ID_DIGITS - 1}}}$"},
        {"type": "integer", "minimum": 1},
    ],
}


class InvalidMondayId(ValueError):
    """The value is not a monday id; the message says why, without echoing the value."""


def monday_id(value: object) -> str:
    """The canonical string of a monday id, or `InvalidMondayId`."""
    if isinstance(value, bool):  # bool is an int subclass: True is not user 1
        raise InvalidMondayId("must be a monday id (digits), not a boolean")
    if isinstance(value, int):
        if value <= 0:
            raise InvalidMondayId("must be a positive monday id")
        text = str(value)
    elif isinstance(value, str):
        text = value
        # str.isdigit() accepts other scripts' digits and superscripts: only 0-9 will do.
        if not text or not all("0" <= char <= "9" for char in text):
            raise InvalidMondayId("must be a monday id made of the digits 0-9 only")
        if text[0] == "0":
            raise InvalidMondayId("must be a positive monday id without leading zeros")
    else:
        raise InvalidMondayId("must be a monday id (a number or a string of digits)")
    if len(text) > MAX_ID_DIGITS:
        raise InvalidMondayId(f"must be a monday id of at most {MAX_ID_DIGITS} digits")
    return text


def monday_id_or_none(value: object) -> str | None:
    """`monday_id`, or None when the value is absent or not an id."""
    if value is None:
        return None
    try:
        return monday_id(value)
    except InvalidMondayId:
        return None
