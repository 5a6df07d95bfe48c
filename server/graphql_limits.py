"""What a GraphQL document costs, measured before it is validated or run (contract §8, §10).

Both GraphQL surfaces (`POST /graphql/system` and the monday-compatible `POST /v2`) measure
their documents here, with one walker: fragments expanded, each fragment summarised once
(memoised), so the work is linear in the document's size however often fragments spread each
other. A document where each of 20 fragments spreads the next twice expands to a million
fields; this walker visits each selection of the text once and reports the expanded counts.

Three numbers are measured per operation, fragments expanded:
- `depth`: the deepest field nesting (the root fields are depth 1);
- `aliases`: how many aliased fields the operation resolves;
- `rows`: the rows its root fields may return, as the surface's `row_cost` prices each root
  field statically (e.g. `notifications(limit: -1)` costs the per-request maximum).
A document is as costly as its costliest operation (only one of them runs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)

# How many rows a root field may return; priced by the surface that runs the document.
RowCost = Callable[[FieldNode], int]


@dataclass(frozen=True, slots=True)
class Limits:
    """The most a document may cost on one surface."""

    max_depth: int
    max_aliases: int
    max_rows: int
    # Fields of one selection set under one response name: graphql-core's validation
    # compares those pairwise (OverlappingFieldsCanBeMerged), so 4,980 `message` fields
    # under the token limit cost 0.3 s of the event loop (500 `id`s on /v2: 0.25 s).
    max_repeats: int = 20
    # Selections as written (fields, inline fragments, spreads; a fragment's once): the same
    # pairwise comparison runs over the fields fragments bring into one set (1,500 spreads of
    # one fragment cost 0.15 s).
    max_selections: int = 300
    # Fields of an operation or fragment with its fragments expanded (the introspection query
    # has 229): validation merges what spreads bring in, so a chain of fragments each
    # spreading the ones before it cost 0.16 s under the limits above (4,826 fields).
    max_fields: int = 500


@dataclass(frozen=True, slots=True)
class Cost:
    """A document's measured cost; `visits` is the walker's work (selections looked at)."""

    depth: int
    aliases: int
    rows: int
    visits: int
    # The most fields one selection set has under one response name (as written).
    repeats: int = 0
    # Fields of the largest operation or fragment, fragments expanded.
    fields: int = 0


class DocumentTooCostly(Exception):
    """The document exceeds one of its surface's limits; nothing of it was run."""

    def __init__(self, limit: str, value: int, maximum: int, message: str) -> None:
        super().__init__(message)
        self.limit = limit  # "depth", "aliases", "selections", "fields", "repeats" or "rows"
        self.value = value
        self.maximum = maximum
        self.message = message


@dataclass(frozen=True, slots=True)
class _Summary:
    """A selection set's cost, fragments expanded; `rows` counts its own top-level fields."""

    depth: int
    aliases: int
    rows: int
    fields: int = 0  # fields, fragments expanded


_EMPTY = _Summary(0, 0, 0)


class _Walker:
    def __init__(self, document: DocumentNode, row_cost: RowCost) -> None:
        self.fragments: dict[str, FragmentDefinitionNode] = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.row_cost = row_cost
        self.memo: dict[str, _Summary] = {}
        self.visits = 0
        self.repeats = 0
        self._summarise_fragments()

    def _summarise_fragments(self) -> None:
        """Every fragment's summary, dependencies first, without recursion over fragments:
        a chain of a thousand fragments must not exhaust Python's stack. A fragment in a
        cycle counts as empty where it closes the cycle (validation refuses cycles later)."""
        state: dict[str, int] = {}  # 1 = on the stack, 2 = summarised
        for root in self.fragments:
            if root in state:
                continue
            stack: list[tuple[str, list[str]]] = [(root, self._spreads(root))]
            state[root] = 1
            while stack:
                name, pending = stack[-1]
                if pending:
                    child = pending.pop()
                    if child in self.fragments and child not in state:
                        state[child] = 1
                        stack.append((child, self._spreads(child)))
                    continue
                stack.pop()
                self.memo[name] = self._selection_set(self.fragments[name].selection_set)
                state[name] = 2

    def _spreads(self, name: str) -> list[str]:
        """The fragment names spread anywhere inside fragment `name` (its dependencies)."""
        found: list[str] = []
        sets: list[SelectionSetNode] = [self.fragments[name].selection_set]
        while sets:
            for selection in sets.pop().selections:
                if isinstance(selection, FragmentSpreadNode):
                    found.append(selection.name.value)
                elif isinstance(selection, FieldNode | InlineFragmentNode):
                    if selection.selection_set is not None:
                        sets.append(selection.selection_set)
        return found

    def _selection_set(self, selection_set: SelectionSetNode | None) -> _Summary:
        """Recursive over field nesting only, which the GraphQL parser already bounds."""
        if selection_set is None:
            return _EMPTY
        depth = aliases = rows = fields = 0
        names: Counter[str] = Counter()
        for selection in selection_set.selections:
            self.visits += 1
            if isinstance(selection, FieldNode):
                name = (selection.alias or selection.name).value
                names[name] += 1
                self.repeats = max(self.repeats, names[name])
                sub = self._selection_set(selection.selection_set)
                depth = max(depth, 1 + sub.depth)
                aliases += sub.aliases + (1 if selection.alias else 0)
                rows += self.row_cost(selection)
                fields += 1 + sub.fields
                continue
            if isinstance(selection, InlineFragmentNode):
                sub = self._selection_set(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                # Unknown fragments and cycle closers count as empty: validation refuses them.
                sub = self.memo.get(selection.name.value, _EMPTY)
            else:
                continue
            depth, aliases, rows = max(depth, sub.depth), aliases + sub.aliases, rows + sub.rows
            fields += sub.fields
        return _Summary(depth, aliases, rows, fields)

    def operation(self, operation: OperationDefinitionNode) -> _Summary:
        return self._selection_set(operation.selection_set)


def measure(document: DocumentNode, row_cost: RowCost) -> Cost:
    """The cost of the document's costliest operation, in work linear in its size."""
    walker = _Walker(document, row_cost)
    depth = aliases = rows = 0
    # Validation compares the fields of every operation and every fragment, expanded.
    fields = max((summary.fields for summary in walker.memo.values()), default=0)
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            summary = walker.operation(definition)
            depth = max(depth, summary.depth)
            aliases = max(aliases, summary.aliases)
            rows = max(rows, summary.rows)
            fields = max(fields, summary.fields)
    return Cost(depth, aliases, rows, walker.visits, walker.repeats, fields)


# Each limit in the order it is checked: its name, the cost it bounds, its maximum, and what
# the caller is told ({value} and {maximum} filled in).
_CHECKS: tuple[tuple[str, str, str, str], ...] = (
    ("depth", "depth", "max_depth", "The document is nested {value} levels deep; at most "
     "{maximum} levels of fields are allowed."),
    ("aliases", "aliases", "max_aliases", "The document uses {value} aliases (fragments "
     "expanded); at most {maximum} are allowed."),
    ("repeats", "repeats", "max_repeats", "One selection asks for the same field {value} "
     "times; at most {maximum} are allowed. Ask for each field once."),
    ("selections", "visits", "max_selections", "The document has {value} selections (fields, "
     "fragments and spreads); at most {maximum} are allowed."),
    ("fields", "fields", "max_fields", "The document asks for {value} fields once its "
     "fragments are expanded; at most {maximum} are allowed."),
    ("rows", "rows", "max_rows", "The document may return {value} rows in total; at most "
     "{maximum} are allowed in one request. Ask for fewer rows (a smaller limit, fewer "
     "aliases) and page through the rest."),
)  # fmt: skip


def check(document: DocumentNode, limits: Limits, row_cost: RowCost) -> Cost:
    """`measure`, then `DocumentTooCostly` for the first limit the document exceeds."""
    cost = measure(document, row_cost)
    for name, measured, bound, message in _CHECKS:
        value, maximum = getattr(cost, measured), getattr(limits, bound)
        if value > maximum:
            text = message.format(value=value, maximum=maximum)
            raise DocumentTooCostly(name, value, maximum, text)
    return cost


def literal_int(node: FieldNode, argument: str, variables: Mapping[str, object]) -> int | None:
    """An integer argument's value, given literally or as a variable; None when absent,
    null or not an integer (the schema's validation reports the latter)."""
    for arg in node.arguments:
        if arg.name.value != argument:
            continue
        value = arg.value
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, VariableNode):
            given = variables.get(value.name.value)
            if isinstance(given, int) and not isinstance(given, bool):
                return given
        return None
    return None
