"""Hot statements compiled once per dialect and run at the driver's cursor (SQLite).

On the send path's writer thread, SQLAlchemy's execute path (cache key of the statement,
parameter processing, execution context, result wrapping) cost more than SQLite's own work,
holding the GIL the event loop needs. A `Prepared` statement is compiled once per dialect;
executing it converts the values with the columns' own bind and result processors (so what is
stored and read back is exactly what `connection.execute` would store and read) and calls the
DBAPI cursor directly. Only SQLite's `pysqlite` driver takes this way; other dialects (and any
statement with expanding `IN` parameters) go through `connection.execute` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


class _Compiled:
    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: Sequence[str] | None):
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
        assert isinstance(compiled, SQLCompiler)
        names = compiled.positiontup
        assert names is not None, "a positional paramstyle (pysqlite's qmark)"
        self.sql = compiled.string
        assert "POSTCOMPILE" not in self.sql, "no expanding IN parameters"
        self.names = list(names)
        self.defaults: Mapping[str, Any] = compiled.construct_params(_check=False) or {}
        self.binds = [
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self.names
        ]
        # What each result column is and how its type reads it (SQLAlchemy's own list).
        columns = compiled._result_columns or []
        self.columns = [entry[0] for entry in columns]
        self.results: list[Processor] = [
            entry[3].dialect_impl(dialect).result_processor(dialect, None) for entry in columns
        ]

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        defaults = self.defaults
        out = []
        for name, process in zip(self.names, self.binds, strict=True):
            value = values[name] if name in values else defaults[name]
            out.append(process(value) if process is not None else value)
        return tuple(out)

    def row(self, raw: Sequence[Any]) -> dict[str, Any]:
        return {
            key: process(value) if process is not None else value
            for key, process, value in zip(self.columns, self.results, raw, strict=True)
        }


class Prepared:
    """One statement (`keys`: the INSERT's columns, in the order values will have them)."""

    def __init__(self, statement: Executable, keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.keys = keys
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, connection: Connection) -> _Compiled | None:
        dialect = connection.dialect
        if dialect.name != "sqlite" or dialect.driver != "pysqlite":
            return None
        found = self._by_dialect.get(dialect.name)
        if found is None:
            statement = self.statement
            assert isinstance(statement, ClauseElement)
            found = self._by_dialect[dialect.name] = _Compiled(statement, dialect, self.keys)
        return found

    def count(self, connection: Connection, values: Mapping[str, Any] | None = None) -> int:
        """Execute for its effect; how many rows it changed."""
        compiled = self._compiled(connection)
        if compiled is None:
            return int(connection.execute(self.statement, dict(values or {})).rowcount)
        cursor = _cursor(connection).execute(compiled.sql, compiled.parameters(values or {}))
        return int(cursor.rowcount)

    def run_many(self, connection: Connection, values: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per parameter set (an `executemany`)."""
        compiled = self._compiled(connection)
        if compiled is None:
            connection.execute(self.statement, [dict(v) for v in values])
            return
        _cursor(connection).executemany(compiled.sql, [compiled.parameters(v) for v in values])

    def rows(
        self, connection: Connection, values: Mapping[str, Any] | None = None
    ) -> Iterable[Mapping[str, Any]]:
        """Execute; its rows as mappings of the statement's columns, converted."""
        compiled = self._compiled(connection)
        if compiled is None:
            return [
                dict(row)
                for row in connection.execute(self.statement, dict(values or {})).mappings()
            ]
        cursor = _cursor(connection).execute(compiled.sql, compiled.parameters(values or {}))
        return [compiled.row(raw) for raw in cursor.fetchall()]


def _cursor(connection: Connection) -> Any:
    # The DBAPI connection under SQLAlchemy's, in the transaction SQLAlchemy began on it.
    return connection.connection.driver_connection
