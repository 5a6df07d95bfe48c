"""Directus' `search` query parameter over the ledger's columns."""

from __future__ import annotations

import re

from sqlalchemy import false, func, or_
from sqlalchemy.sql.elements import ColumnElement

from server.notifications.fields import INT_RANGES, SEARCH_NUMBER_FIELDS, SEARCH_TEXT_FIELDS
from server.notifications.filters import short_enough, storable_text
from server.storage.tables import notifications


def compile_search(text: str) -> ColumnElement[bool]:
    """Directus' `search`: case-insensitive substring over text fields, exact on numbers."""
    storable_text(text, "search")
    short_enough(text, "search")
    needle = text.lower()
    clauses: list[ColumnElement[bool]] = [
        func.lower(notifications.c[name]).contains(needle, autoescape=True)
        for name in SEARCH_TEXT_FIELDS
    ]
    stripped = text.strip()
    if re.fullmatch(r"[+-]?\d{1,16}", stripped):
        number = int(stripped)
        for name in SEARCH_NUMBER_FIELDS:
            low, high = INT_RANGES[name]
            if low <= number <= high:
                clauses.append(notifications.c[name] == number)
    return or_(*clauses) if clauses else false()
