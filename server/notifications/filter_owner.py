"""Whose rows a filter keeps: `recipient = U OR sender = U`, read from the filter's shape.

The widget's latest list asks for "what I received or sent" as a filter: `_or` of `recipient`
and `sender`, both equal to `$CURRENT_USER`. For a member that is their visibility already,
which the list reads as two arms in index order (notifications/reads.py). An admin sees the
whole account, so for them the same filter was one `recipient = U OR sender = U` statement,
and no index gives those rows in time order: SQLite sorted every row the admin received or
sent in a temporary B-tree for a page of 5 (3.6 ms with 4,500 such rows at 100,000, against
0.05 ms as two arms; the sort grows with the rows).

A query whose filter has this condition among its top-level conjuncts carries `owner = U`
and the rest of its filter apart. An admin's list read of it (or U's own) runs as U's two
arms with the rest of the filter: the two arms are exactly the condition taken out, so the
rows, their order and the counts are the ones the single statement gives. (Left in, the
condition is redundant to SQLite, but PostgreSQL's planner read it as a bitmap OR again and
sorted the first arm.)
"""

from __future__ import annotations

from typing import Any

from server.notifications.filters import MAX_FILTER_DEPTH, Context, equality_value

ROLES = ("recipient", "sender")


def split_owner(tree: Any, ctx: Context) -> tuple[str, Any] | None:
    """(U, the filter without that condition) when `tree` (a filter `compile_filter`
    accepted) keeps only rows U received or sent, by an `_or` of exactly `recipient = U` and
    `sender = U` ANDed in at its top (directly or through `_and`); None otherwise."""
    owner, rest = _without_owner(tree, ctx, 0)
    return None if owner is None else (owner, rest)


def _without_owner(node: Any, ctx: Context, depth: int) -> tuple[str | None, Any]:
    """The first owner `_or` among `node`'s conjuncts, and `node` without it."""
    if not isinstance(node, dict):
        return None, node
    owner: str | None = None
    rest: dict[str, Any] = {}
    for key, value in node.items():
        if owner is None and key == "_or":
            owner = _owner_of(value, ctx)
            if owner is not None:
                continue
        if owner is None and key == "_and" and isinstance(value, list) and depth < MAX_FILTER_DEPTH:
            parts = []
            for part in value:
                if owner is None:
                    owner, part = _without_owner(part, ctx, depth + 1)
                parts.append(part)
            value = parts
        rest[key] = value
    return owner, rest


def _owner_of(parts: Any, ctx: Context) -> str | None:
    """U when the `_or` list `parts` is `[{recipient: U}, {sender: U}]` (either order, `_eq`
    or a bare value)."""
    if not isinstance(parts, list) or len(parts) != len(ROLES):
        return None
    values: dict[str, Any] = {}
    for part in parts:
        if not isinstance(part, dict) or len(part) != 1:
            return None
        [(name, rule)] = part.items()
        if name not in ROLES or name in values:
            return None
        if isinstance(rule, dict):
            if list(rule) != ["_eq"]:
                return None
            rule = rule["_eq"]
        values[name] = equality_value(name, rule, ctx)
    owner = values["recipient"]
    return owner if isinstance(owner, str) and owner == values["sender"] else None
