"""The one GraphQL cost walker (server/graphql_limits.py) does work linear in the document's
text, however fragments spread each other: measured by the selections it visits."""

from __future__ import annotations

import pytest
from graphql import parse

from server.graphql_limits import measure


def doubling(levels: int) -> str:
    spreads = " ".join(
        f"fragment F{i} on Q {{ a{i}: x ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return "{ root { ...F0 } } " + spreads + f" fragment F{levels} on Q {{ leaf: x }}"


@pytest.mark.parametrize("levels", [10, 20, 40])
def test_visits_grow_with_the_text_not_the_expansion(levels: int) -> None:
    cost = measure(parse(doubling(levels)), lambda _field: 1)
    # Expanded: every level doubles the aliases below it.
    assert cost.aliases == sum(2**i for i in range(levels)) + 2**levels
    assert cost.depth == 2 and cost.rows == 1
    # Visited: each selection of the text once (3 per fragment, the last one 1, the root 2).
    assert cost.visits == 3 * levels + 1 + 2


def test_a_long_fragment_chain_does_not_exhaust_the_stack() -> None:
    chain = " ".join(f"fragment F{i} on Q {{ ...F{i + 1} }}" for i in range(5000))
    cost = measure(parse("{ ...F0 } " + chain + " fragment F5000 on Q { x }"), lambda _f: 1)
    assert cost.rows == 1 and cost.visits == 5000 + 2


def test_cycles_are_left_to_validation() -> None:
    cost = measure(
        parse("{ ...A } fragment A on Q { x ...B } fragment B on Q { ...A }"), lambda _f: 1
    )
    assert cost.rows == 1
