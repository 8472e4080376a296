"""Engines over SQLite or PostgreSQL: URL handling, the SQLite pragmas, explicit ``BEGIN``.

The default database is a SQLite file (WAL) that several OS processes write
concurrently, each agent its own tables; PostgreSQL works through the same code when
the URL is ``postgresql://...``.

Concurrency rules (SQLite):

* every connection gets ``journal_mode=WAL``, ``synchronous=NORMAL``,
  ``busy_timeout=30000`` (ms) and ``foreign_keys=ON``;
* every write runs in a short ``BEGIN IMMEDIATE`` transaction (the
  ``sqlite_immediate`` execution option, set by :class:`backend.persistence.Store`), so a
  writer waits (up to the busy timeout) for the write lock up front instead of failing
  with ``SQLITE_BUSY`` when it upgrades a read snapshot.

Engines must not cross a ``fork``: each process calls :func:`make_engine` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool


def make_engine(url: str, *, durable: bool = False, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite create the file's folder and set the pragmas.

    Parameters
    ----------
    url
        SQLAlchemy URL, e.g. ``sqlite:///var/tradingmesh.db`` or
        ``postgresql+psycopg://user@host/db``.
    durable
        SQLite: ``synchronous=FULL`` (every commit fsynced, so a write that returned
        survives a power loss: the execution agent's order intents and sends) instead
        of ``NORMAL``.  PostgreSQL commits durably by default.
    **kwargs
        Passed to :func:`sqlalchemy.create_engine`.

    Returns
    -------
    Engine
        For SQLite: WAL, ``synchronous=NORMAL`` (``FULL`` when ``durable``),
        ``busy_timeout=30000`` ms and
        ``foreign_keys=ON`` on every connection; transactions begin explicitly
        (``BEGIN``, or ``BEGIN IMMEDIATE`` with the ``sqlite_immediate`` execution
        option that :class:`Store` uses for writes).
    """
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(u, **kwargs)
    db = u.database or ""
    if db in ("", ":memory:") or db.startswith("file::memory:"):
        kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
    else:
        Path(db).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(u, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy emit BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
