"""A SELECT as SQLAlchemy executed it, run again at SQLite's cursor.

A ledger page is read again and again with the same statement (a bell polls one query), and
on the read pool's thread SQLAlchemy's execute path (cache key, execution context, parameter
processing, `Row` objects) cost about as much as SQLite's own work for the page and its count.
A `CompiledRead` is taken from one execution of the statement by SQLAlchemy: the SQL it sent
(from SQLAlchemy's compiled cache, so nothing is compiled here) and the parameters it bound (a
memoised statement's values never change), with its result columns' processors. Running it
again is one `cursor.execute` and one fetch. Every value still goes through its column type's
own result processor (so it reads exactly what `connection.execute` would give), unless the
caller replaces a column's processor (the ledger turns SQLite's timestamp text straight into
the API's ISO string).

Only SQLite's stdlib `pysqlite` driver takes this way (`compiled_reads_apply`), like
storage/prepared.py's hot writes. No result is kept: every run executes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None
# Given a column's own result processor (None: the raw value is right), the one to use.
Override = Callable[[Processor], Callable[[Any], Any]]


class CompiledRead:
    """One SELECT as SQLAlchemy last executed it on SQLite: its SQL (expanding `IN` lists
    rendered), its parameters as bound (already through their types' bind processors) and
    its result columns' processors."""

    __slots__ = ("_processed", "keys", "parameters", "processors", "sql")

    def __init__(
        self, result: CursorResult[Any], overrides: Mapping[str, Override] | None = None
    ) -> None:
        context = result.context
        compiled = context.compiled
        assert runs_again(result)
        assert isinstance(compiled, SQLCompiler)
        dialect = context.dialect
        self.sql: str = context.statement
        self.parameters: tuple[Any, ...] = tuple(context.parameters[0])
        # What each result column is and how its type reads it (SQLAlchemy's own list).
        columns = compiled._result_columns or []
        # Plain `str` keys: SQLAlchemy's are str subclasses, which orjson refuses as keys.
        self.keys: list[str] = [str(entry[0]) for entry in columns]
        processors: list[Processor] = []
        for key, entry in zip(self.keys, columns, strict=True):
            own = entry[3].dialect_impl(dialect).result_processor(dialect, None)
            override = (overrides or {}).get(key)
            processors.append(override(own) if override is not None else own)
        self.processors: list[Processor] = processors
        self._processed = [(k, p) for k, p in zip(self.keys, processors, strict=True) if p]

    def rows(self, connection: Connection) -> list[dict[str, Any]]:
        """Execute; every row as a mapping of the statement's column keys, values processed."""
        raw = _cursor(connection).execute(self.sql, self.parameters).fetchall()
        keys, processed = self.keys, self._processed
        out = []
        for values in raw:
            row = dict(zip(keys, values, strict=True))
            # Only the columns with a processor (a page of 24 columns has 7): a pass over
            # every value was the larger part of a page read.
            for key, process in processed:
                row[key] = process(row[key])
            out.append(row)
        return out

    def scalar(self, connection: Connection) -> Any:
        """Execute; the first column of the one row (a count)."""
        row = _cursor(connection).execute(self.sql, self.parameters).fetchone()
        process = self.processors[0]
        return process(row[0]) if process is not None else row[0]


def runs_again(result: CursorResult[Any]) -> bool:
    """Whether `result` came from one compiled statement with one parameter set (a SELECT
    run once), which a `CompiledRead` can repeat."""
    context = result.context
    return isinstance(context.compiled, SQLCompiler) and len(context.parameters) == 1


def compiled_reads_apply(connection: Connection) -> bool:
    """Whether `connection` is one a `CompiledRead` runs on (SQLite's stdlib driver)."""
    dialect = connection.dialect
    return dialect.name == "sqlite" and dialect.driver == "pysqlite"


def _cursor(connection: Connection) -> Any:
    # The DBAPI connection under SQLAlchemy's, in the transaction the read pool began on it.
    return connection.connection.driver_connection
