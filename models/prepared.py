"""Prebuilt statements of the order path, run straight on the driver's cursor.

A Core ``connection.execute()`` costs about 60 µs of CPU per statement on top of the driver
(an execution context, a result object, parameter and row processing set up anew each time);
the order path sends five to ten statements per message, which made SQLAlchemy the largest
single cost of a burst. A ``Prepared`` statement does that set-up once per dialect:
it compiles the statement, notes the type processors of its parameters and of its result
columns, and then per call only converts the values and calls the cursor of the session's
connection. What stays the same as ``execute()``:

- it runs in the session's transaction, on its connection;
- parameters and rows go through the same type processors (``AwareDateTime``, ``Quantity``,
  SQLite's datetime text), so values look the same either way;
- driver errors are raised as SQLAlchemy's (``IntegrityError``, ``OperationalError``), and a
  dead connection is invalidated, through the connection's own error handling;
- ``before_cursor_execute`` listeners see the statement (the benchmark counts with one).

Only statements with plain bound values qualify (no ``IN`` lists expanded at execution).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlmodel import Session

_Processor = Callable[[Any], Any]
_CURSOR = "tuangou.prepared.cursor"  # where a connection keeps the cursor this module uses


@dataclass(frozen=True)
class Result:
    """The rows a statement returned (processed, with attribute access by column name) and
    the number of rows it changed."""

    rows: list[Any]
    rowcount: int

    def all(self) -> list[Any]:
        return self.rows

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def scalar_one(self) -> Any:
        if len(self.rows) != 1:
            raise LookupError(f"expected one row, got {len(self.rows)}")
        return self.rows[0][0]


class _Plan:
    """One statement compiled for one dialect, with its processors."""

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        binds = compiled.binds
        if any(bind.expanding for bind in binds.values()) or compiled.escaped_bind_names:
            raise ValueError("only statements with plain bound values can be prepared")
        self.sql: str = compiled.string
        # Values fixed in the statement (``status == "open"``); the caller passes the rest.
        self.fixed = {name: bind.value for name, bind in binds.items() if not bind.required}
        self.required = frozenset(name for name, bind in binds.items() if bind.required)
        self.binds: list[tuple[str, _Processor]] = [
            (name, proc) for name, bind in binds.items()
            if (proc := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None]
        self.positions: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positional else None)
        # a SELECT's, or a DML's RETURNING (a text() statement here returns nothing)
        columns = list(getattr(statement, "exported_columns", ()))
        self.results: list[tuple[int, _Processor]] = [
            (i, proc) for i, column in enumerate(columns)
            if (proc := column.type.dialect_impl(dialect).result_processor(dialect, None)) is not None]
        self.row: Any = namedtuple("Row", [c.key for c in columns], rename=True) if columns else None  # type: ignore[misc]

    def values(self, params: Mapping[str, Any]) -> Any:
        missing = self.required.difference(params)
        if missing:
            raise KeyError(f"no value for {sorted(missing)}")
        values = {**self.fixed, **params}
        for name, proc in self.binds:
            values[name] = proc(values[name])
        if self.positions is not None:
            return tuple(values[name] for name in self.positions)
        return values


class Prepared:
    """A prebuilt Core statement (SELECT, or INSERT/UPDATE/DELETE with or without RETURNING)
    that ``run`` executes in a session's transaction; see the module's docstring."""

    __slots__ = ("_plans", "statement")

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._plans: dict[str, _Plan] = {}

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = _Plan(self.statement, dialect)
        return plan

    def run(self, session: Session, params: Mapping[str, Any]) -> Result:
        """Execute with these parameters; returns the rows and the row count."""
        conn: Connection = session.connection()
        plan = self._plan(conn.dialect)
        values = plan.values(params)
        cursor = _cursor(conn)
        if conn.dispatch.before_cursor_execute:
            for listener in conn.dispatch.before_cursor_execute:
                listener(conn, cursor, plan.sql, values, None, False)
        try:
            cursor.execute(plan.sql, values)
            raw = cursor.fetchall() if plan.row is not None else []
        except Exception as exc:
            # Wrapped, and a lost connection invalidated, as execute() does; that also closes
            # the cursor, so the next statement makes a new one.
            conn.connection.info.pop(_CURSOR, None)
            conn._handle_dbapi_exception(exc, plan.sql, values, cursor, None)
        rows = raw
        if plan.row is not None:
            results = plan.results
            rows = []
            for row in raw:
                if results:
                    row = list(row)
                    for i, proc in results:
                        row[i] = proc(row[i])
                rows.append(plan.row._make(row))
        return Result(rows, cursor.rowcount)


def _cursor(conn: Connection) -> Any:
    """A cursor of the connection's driver connection, made once per driver connection (a
    connection that was replaced after an error gets a new one)."""
    fairy = conn.connection
    driver = fairy.dbapi_connection
    cached = fairy.info.get(_CURSOR)
    if cached is None or cached[0] is not driver:
        cached = fairy.info[_CURSOR] = (driver, driver.cursor())  # type: ignore[union-attr]
    return cached[1]
