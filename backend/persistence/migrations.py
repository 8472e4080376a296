"""Schema creation and the hand-written upgrades of older databases (added columns).

:func:`create_all` creates the tables of :mod:`backend.persistence.schema` that do not
exist yet and adds the columns an older database lacks, under the write lock.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from backend.persistence.schema import metadata

#: Columns added after a table was first released: ``(table, column)``.  Each is nullable
#: or has a server default, so ``ALTER TABLE ... ADD COLUMN`` works on a populated table.
_ADDED_COLUMNS = (("orders", "external"), ("signals", "regime"), ("orders", "sent_ts"),
                  ("orders", "send_attempts"))


def create_all(engine: Engine) -> None:
    """Create the tables and indexes that do not exist yet (idempotent).

    Safe when several processes call it at once: on SQLite the check-and-create
    runs under the write lock; elsewhere a lost race is retried once.
    """
    for attempt in range(2):
        try:
            with engine.connect() as conn:
                conn = conn.execution_options(sqlite_immediate=True)
                with conn.begin():
                    metadata.create_all(conn, checkfirst=True)
                    _add_missing_columns(conn)
            return
        except sa.exc.DBAPIError:
            if attempt:
                raise


def _add_missing_columns(conn: Connection) -> None:
    """Add the :data:`_ADDED_COLUMNS` an existing database lacks (SQLite and PostgreSQL)."""
    inspector = sa.inspect(conn)
    for table_name, column_name in _ADDED_COLUMNS:
        have = {c["name"] for c in inspector.get_columns(table_name)}
        if column_name in have:
            continue
        col = metadata.tables[table_name].c[column_name]
        ddl = sa.schema.CreateColumn(col).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {table_name} ADD COLUMN {ddl}")
