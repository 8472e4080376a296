"""How every query of the :class:`~backend.persistence.Store` talks to the database.

:class:`StoreBase` owns the engine and the three primitives the per-domain query
mixins build on: a short ``BEGIN IMMEDIATE`` write transaction (refused while the
``db-errors`` drill's failpoint is on), insert-or-ignore on the primary key (so every
``record_*`` is idempotent under at-least-once delivery) and a select in the table's
natural order.  :func:`dialect_insert` is the ``INSERT`` that supports ``ON CONFLICT``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from backend.persistence.engine import make_engine
from backend.persistence.migrations import create_all
from backend.runtime import failpoints

#: Natural order of each table's rows (oldest first).
_ORDER = {
    "signals": ("ts", "id"), "decisions": ("ts", "id"),
    "orders": ("created_ts", "client_order_id"), "fills": ("bar_seq", "fill_time", "ts"),
    "positions": ("symbol",), "equity": ("bar_seq",), "audit": ("ts", "id"),
}


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """Dialect-specific INSERT that supports ``ON CONFLICT``."""
    name = conn.dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"unsupported database dialect {name!r}")


class StoreBase:
    """The engine and the read/write primitives shared by the query mixins.

    Parameters
    ----------
    engine
        An :class:`~sqlalchemy.engine.Engine` or a URL for :func:`make_engine`.
    create
        Run :func:`create_all` first (default ``True``).
    """

    def __init__(self, engine: Engine | str, *, create: bool = True) -> None:
        self.engine = make_engine(engine) if isinstance(engine, str) else engine
        self._unit = threading.local()  # .conn: the open unit of work's connection
        if create:
            create_all(self.engine)

    def close(self) -> None:
        """Dispose of the engine's connection pool."""
        self.engine.dispose()

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """One write transaction for every write made inside the block (this thread).

        An agent that records several rows for one message (compliance: the signal, its
        decision and the audit record) takes the database's write lock once instead of
        once per row, and the rows land together or not at all.  Reads inside the block
        (same thread) use its connection and see its rows.  Nested blocks join the outer
        one.

        Raises
        ------
        sqlalchemy.exc.SQLAlchemyError
            Beginning or committing failed (nothing of the block is kept); an exception
            raised inside the block rolls everything back and propagates.
        """
        if getattr(self._unit, "conn", None) is not None:
            yield
            return
        with self._transaction() as conn:
            self._unit.conn = conn
            try:
                yield
            finally:
                self._unit.conn = None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.unit_of_work():  # the open unit's transaction, else one of its own
            yield self._unit.conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for reading: inside :meth:`unit_of_work` its own (so the block
        reads its own rows, and an in-memory database's single connection is never
        handed back to the pool mid-transaction), else a pooled one."""
        conn = getattr(self._unit, "conn", None)
        if conn is not None:
            yield conn
            return
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        if failpoints.db_writes_refused():  # the db-errors drill
            raise sa.exc.OperationalError(
                "BEGIN IMMEDIATE", {}, sqlite3.OperationalError(
                    "database is locked (drill: writes refused)"))
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn

    def _insert_ignore(self, table: sa.Table, row: dict[str, Any]) -> bool:
        with self._write() as conn:
            stmt = dialect_insert(conn, table).values(**row).on_conflict_do_nothing()
            return conn.execute(stmt).rowcount == 1

    def _select(
        self, table: sa.Table, limit: int | None = None, *conds: Any, **eq: Any,
    ) -> list[dict[str, Any]]:
        """Rows of ``table`` matching ``conds`` and ``column == value`` for non-None
        ``eq`` values, in the table's natural order; ``limit`` keeps the last N."""
        order = [table.c[k] for k in _ORDER[table.name]]
        stmt = sa.select(table).where(
            *conds, *[table.c[k] == v for k, v in eq.items() if v is not None])
        if limit is None:
            stmt = stmt.order_by(*order)
        else:
            stmt = stmt.order_by(*[c.desc() for c in order]).limit(limit)
        with self._read() as conn:
            out = [dict(r._mapping) for r in conn.execute(stmt)]
        return out if limit is None else out[::-1]
