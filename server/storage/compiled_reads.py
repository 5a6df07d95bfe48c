"""A SELECT compiled once, with its parameter values, and run at SQLite's cursor.

A ledger page is read again and again with the same statement (a bell polls one query), and
on the read pool's thread SQLAlchemy's execute path (cache key, execution context, parameter
processing, `Row` objects) cost about as much as SQLite's own work for the page and its
count. A `CompiledRead` is the statement compiled once for the dialect, its bound values
already converted by their types' bind processors (a memoised statement's values never change),
and its result columns' processors; running it is one `cursor.execute` and one `fetchall`.
Every value still goes through its column type's own result processor (so it reads exactly
what `connection.execute` would give), unless the caller replaces a column's processor (the
ledger turns SQLite's timestamp text straight into the API's ISO string).

Only SQLite's stdlib `pysqlite` driver takes this way (`compile_read` returns None
elsewhere), like storage/prepared.py's hot writes. No result is cached: every run executes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None
# Given a column's own result processor (None: the raw value is right), the one to use.
Override = Callable[[Processor], Callable[[Any], Any]]


class CompiledRead:
    """One SELECT for one dialect: its SQL, parameter tuple and result processors."""

    __slots__ = ("_processed", "keys", "parameters", "processors", "sql")

    def __init__(
        self,
        statement: ClauseElement,
        dialect: Dialect,
        overrides: Mapping[str, Override] | None = None,
    ) -> None:
        # render_postcompile: expanding `IN` lists become one `?` each, with their values.
        compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        assert isinstance(compiled, SQLCompiler)
        names = compiled.positiontup
        assert names is not None, "a positional paramstyle (pysqlite's qmark)"
        self.sql: str = compiled.string
        values = compiled.construct_params() or {}
        out = []
        for name in names:
            # An expanded `IN` value (`item_1_2`) is bound with its list's type (`item_1`).
            bind = compiled.binds.get(name)
            if bind is None:
                bind = compiled.binds[name.rsplit("_", 1)[0]]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            out.append(process(values[name]) if process is not None else values[name])
        self.parameters: tuple[Any, ...] = tuple(out)
        columns = compiled._result_columns or []
        self.keys: list[str] = [entry[0] for entry in columns]
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


def compiled_reads_apply(connection: Connection) -> bool:
    """Whether `connection` is one a `CompiledRead` runs on (SQLite's stdlib driver)."""
    dialect = connection.dialect
    return dialect.name == "sqlite" and dialect.driver == "pysqlite"


def compile_read(
    statement: ClauseElement, connection: Connection, overrides: Mapping[str, Override] | None
) -> CompiledRead | None:
    """`statement` compiled for `connection`, or None where a `CompiledRead` can't run."""
    if not compiled_reads_apply(connection):
        return None
    return CompiledRead(statement, connection.dialect, overrides)


def _cursor(connection: Connection) -> Any:
    # The DBAPI connection under SQLAlchemy's, in the transaction the read pool began on it.
    return connection.connection.driver_connection
