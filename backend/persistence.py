"""Durable state of the mesh: signals, decisions, orders, fills, positions, equity, audit.

SQLAlchemy Core (no ORM).  The default database is a SQLite file (WAL) that several
OS processes write concurrently, each agent its own tables; PostgreSQL works through
the same code when the URL is ``postgresql://...``.

Concurrency rules (SQLite):

* every connection gets ``journal_mode=WAL``, ``synchronous=NORMAL``,
  ``busy_timeout=30000`` (ms) and ``foreign_keys=ON``;
* every write runs in a short ``BEGIN IMMEDIATE`` transaction, so a writer waits
  (up to the busy timeout) for the write lock up front instead of failing with
  ``SQLITE_BUSY`` when it upgrades a read snapshot;
* there are no foreign keys between tables on purpose: agents record their rows in
  whatever order the bus delivers them (a fill may be written before its signal).

Every ``record_*`` method is idempotent (insert-or-ignore on the primary key), so an
at-least-once consumer can call it again on redelivery.  Engines must not cross a
``fork``: each process calls :func:`make_engine` itself.

Units: prices in quote currency per base unit, quantities in base units, notional,
cash, fees and P&L in quote currency (``Float``: paper money), times in ns since the
Unix epoch (UTC, ``BigInteger``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from backend.messages import (
    AuditRecorded,
    ComplianceDecided,
    OptimizerFinished,
    OptimizerProgressed,
    OrderFilled,
    OrderStatus,
    PortfolioMarked,
    PositionChanged,
    RiskDecided,
    SignalGenerated,
    SubmitOrder,
    now_ns,
    stable_id,
)
from backend.runtime import failpoints

metadata = sa.MetaData()
C, F, NS = sa.Column, sa.Float, sa.BigInteger  # short aliases, deleted after the tables
ID, SYM, SIDE = sa.String(128), sa.String(32), sa.String(8)

signals = sa.Table(
    "signals", metadata,
    C("id", ID, primary_key=True), C("correlation_id", ID, index=True),  # == id
    C("ts", NS, nullable=False), C("symbol", SYM, nullable=False, index=True),
    C("side", SIDE, nullable=False), C("confidence", F), C("entry_price", F),
    C("stop_loss", F), C("take_profit", F), C("strategy", sa.String(64)), C("params", sa.JSON),
    C("reason", sa.Text), C("bar_seq", NS), C("bar_time", NS), C("source", ID),
    # market regime label (backend.marketdata.regime); added by migration (see _ADDED_COLUMNS)
    C("regime", sa.String(48), nullable=False, default="", server_default=""),
)
decisions = sa.Table(
    "decisions", metadata,
    C("id", ID, primary_key=True),  # the decision message id
    C("signal_id", ID, nullable=False, index=True), C("correlation_id", ID, index=True),
    C("stage", sa.String(16), nullable=False),  # "compliance" | "risk"
    C("approved", sa.Boolean, nullable=False), C("rule", sa.String(64)), C("reason", sa.Text),
    C("quantity", F), C("notional", F),  # base units, quote currency (risk stage only)
    C("ts", NS, nullable=False), C("source", ID),
)
orders = sa.Table(
    "orders", metadata,
    C("client_order_id", sa.String(64), primary_key=True), C("signal_id", ID, index=True),
    C("correlation_id", ID, index=True), C("symbol", SYM, nullable=False, index=True),
    C("side", SIDE, nullable=False), C("quantity", F, nullable=False),
    C("reduce_only", sa.Boolean, nullable=False), C("stop_loss", F), C("take_profit", F),
    C("status", sa.String(24), nullable=False, index=True), C("venue_order_id", ID),
    C("reason", sa.Text), C("created_ts", NS, nullable=False),
    C("updated_ts", NS, nullable=False), C("bar_seq", NS),
    # True for an order found at the venue that we did not place (adopted by execution's
    # reconciliation); added by migration to older databases (see _ADDED_COLUMNS).
    C("external", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    # When the order was last sent to the venue (ns; NULL: never sent) and how many
    # times: written durably *before* each venue call, so whoever handles the order next
    # knows it may be at the venue (added by migration, see _ADDED_COLUMNS).
    C("sent_ts", NS, nullable=True), C("send_attempts", sa.Integer, nullable=False,
                                       default=0, server_default="0"),
)
fills = sa.Table(
    "fills", metadata,
    C("fill_id", ID, primary_key=True), C("client_order_id", sa.String(64), index=True),
    C("correlation_id", ID, index=True), C("symbol", SYM, nullable=False, index=True),
    C("side", SIDE, nullable=False), C("quantity", F, nullable=False),
    C("price", F, nullable=False), C("fee", F, nullable=False),
    C("realized_pnl", F, nullable=False), C("exit_reason", sa.String(24)),
    C("bar_seq", NS), C("fill_time", NS), C("ts", NS, nullable=False),
)
positions = sa.Table(
    "positions", metadata,
    C("symbol", SYM, primary_key=True), C("quantity", F, nullable=False),  # signed
    C("avg_price", F, nullable=False), C("realized_pnl", F, nullable=False),
    C("updated_ts", NS, nullable=False),
)
equity = sa.Table(
    "equity", metadata,
    C("bar_seq", NS, primary_key=True, autoincrement=False),
    C("bar_time", NS, nullable=False, index=True), C("cash", F, nullable=False),
    C("equity", F, nullable=False),
    C("exposure", F, nullable=False),  # gross notional, quote currency
    C("positions", sa.JSON),  # {symbol: {quantity, avg_price, mark}} at this bar
)
audit = sa.Table(
    "audit", metadata,
    C("id", ID, primary_key=True), C("ts", NS, nullable=False, index=True),
    C("actor", ID, nullable=False), C("action", sa.String(64), nullable=False),
    C("decision", sa.String(64), nullable=False), C("reason", sa.Text),
    C("subject_id", ID, index=True),  # signal or client order id
    C("correlation_id", ID, index=True),
)
mesh_state = sa.Table(
    "mesh_state", metadata,  # small durable key -> JSON values (the halt latch mirror)
    C("key", sa.String(64), primary_key=True), C("value", sa.JSON, nullable=False),
    C("updated_ts", NS, nullable=False),
)
del C, F, NS, ID, SYM, SIDE

#: GA optimizer runs (``tradingmesh optimize``, the optimizer agent).  Scores are in the
#: objective's units, ``NULL`` when undefined; ``config``, ``best_params`` and ``folds``
#: (per fold: params, in/out-of-sample scores, overfit flag, windows) are JSON.
optimizer_runs = sa.Table(
    "optimizer_runs", metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("strategy", sa.String(64), nullable=False, index=True),
    sa.Column("objective", sa.String(32), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("symbols", sa.JSON, nullable=False),
    sa.Column("data_start", sa.BigInteger), sa.Column("data_end", sa.BigInteger),  # ns UTC
    sa.Column("started_ts", sa.BigInteger, nullable=False, index=True),
    sa.Column("finished_ts", sa.BigInteger),
    sa.Column("status", sa.String(16), nullable=False),  # running | finished | failed
    sa.Column("best_params", sa.JSON),
    sa.Column("in_sample", sa.Float), sa.Column("out_of_sample", sa.Float),
    sa.Column("mean_in_sample", sa.Float), sa.Column("mean_out_of_sample", sa.Float),
    sa.Column("overfit", sa.Boolean),
    sa.Column("folds", sa.JSON),
    sa.Column("evaluations", sa.Integer),
    sa.Column("error", sa.Text),
)
#: Fitness statistics of every generation of every fold of a run.
optimizer_generations = sa.Table(
    "optimizer_generations", metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("fold", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("generation", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("best", sa.Float), sa.Column("mean", sa.Float), sa.Column("std", sa.Float),
    sa.Column("evaluations", sa.Integer, nullable=False),
    sa.Column("best_params", sa.JSON),
    sa.Column("ts", sa.BigInteger, nullable=False),
)

#: Order status ranks: a stale event never moves an order back to a lower rank.
_STATUS_RANK = {
    OrderStatus.NEW: 0, OrderStatus.UNKNOWN: 0, OrderStatus.ACCEPTED: 1,
    OrderStatus.PARTIALLY_FILLED: 2, OrderStatus.FILLED: 3,
    OrderStatus.CANCELLED: 3, OrderStatus.REJECTED: 3,
}


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


#: ``mesh_state`` key of the deployment epoch (:meth:`Store.next_epoch`).
EPOCH_STATE = "deployment_epoch"

#: Columns added after a table was first released: ``(table, column)``.  Each is nullable
#: or has a server default, so ``ALTER TABLE ... ADD COLUMN`` works on a populated table.
_ADDED_COLUMNS = (("orders", "external"), ("signals", "regime"), ("orders", "sent_ts"),
                  ("orders", "send_attempts"))


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


def _insert(conn: Connection, table: sa.Table) -> Any:
    """Dialect-specific INSERT that supports ``ON CONFLICT``."""
    name = conn.dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"unsupported database dialect {name!r}")


class Store:
    """Small, explicit, idempotent reads and writes over one engine.

    Parameters
    ----------
    engine
        An :class:`~sqlalchemy.engine.Engine` or a URL for :func:`make_engine`.
    create
        Run :func:`create_all` first (default ``True``).
    """

    def __init__(self, engine: Engine | str, *, create: bool = True) -> None:
        self.engine = make_engine(engine) if isinstance(engine, str) else engine
        if create:
            create_all(self.engine)

    def close(self) -> None:
        """Dispose of the engine's connection pool."""
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
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
            stmt = _insert(conn, table).values(**row).on_conflict_do_nothing()
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
        with self.engine.connect() as conn:
            out = [dict(r._mapping) for r in conn.execute(stmt)]
        return out if limit is None else out[::-1]

    # ------------------------------------------------------------ writes
    def record_signal(self, msg: SignalGenerated) -> bool:
        """Insert a signal; ``False`` if its id is already stored."""
        return self._insert_ignore(signals, {
            "id": msg.id, "correlation_id": msg.correlation_id or msg.id, "ts": msg.ts,
            "symbol": msg.symbol, "side": str(msg.side), "confidence": msg.confidence,
            "entry_price": msg.entry_price, "stop_loss": msg.stop_loss,
            "take_profit": msg.take_profit, "strategy": msg.strategy,
            "params": dict(msg.params), "reason": msg.reason, "bar_seq": msg.bar_seq,
            "bar_time": msg.bar_time, "source": msg.source, "regime": msg.regime,
        })

    def record_decision(
        self, msg: ComplianceDecided | RiskDecided,
        stage: Literal["compliance", "risk"] | None = None,
    ) -> bool:
        """Insert a compliance or risk decision (id = the decision message id).

        ``stage`` defaults to the message type.  ``quantity``/``notional`` are only
        stored for the risk stage.  Returns ``False`` if already stored.
        """
        is_risk = isinstance(msg, RiskDecided)
        stage = stage or ("risk" if is_risk else "compliance")
        return self._insert_ignore(decisions, {
            "id": msg.id, "signal_id": msg.signal.id,
            "correlation_id": msg.correlation_id or msg.signal.id, "stage": stage,
            "approved": msg.approved, "rule": msg.rule, "reason": msg.reason,
            "quantity": msg.quantity if is_risk else None,
            "notional": msg.notional if is_risk else None,
            "ts": msg.ts, "source": msg.source,
        })

    def record_audit(
        self, actor: str, action: str, decision: str, reason: str = "", subject_id: str = "",
        correlation_id: str = "", *, audit_id: str | None = None, ts: int | None = None,
    ) -> bool:
        """Insert an audit entry; ``False`` if ``audit_id`` is already stored.

        Without ``audit_id`` the id is derived from the content (actor, action,
        decision, reason, subject, correlation and ``ts`` if given), so recording
        the same decision again on redelivery is a no-op.  ``ts`` in ns, default now.
        """
        if audit_id is None:
            audit_id = stable_id("audit", actor, action, decision, reason, subject_id,
                                 correlation_id, ts if ts is not None else "")
        return self._insert_ignore(audit, {
            "id": audit_id, "ts": now_ns() if ts is None else ts, "actor": actor,
            "action": action, "decision": decision, "reason": reason,
            "subject_id": subject_id, "correlation_id": correlation_id,
        })

    def record_audit_event(self, msg: AuditRecorded) -> bool:
        """Insert an :class:`AuditRecorded` message (id = message id)."""
        return self.record_audit(
            msg.actor, msg.action, msg.decision, msg.reason, msg.subject_id,
            msg.correlation_id, audit_id=msg.id, ts=msg.ts,
        )

    def record_order_intent(self, msg: SubmitOrder) -> bool:
        """Persist an order before it is sent (status ``NEW``).

        Returns ``True`` if newly inserted, ``False`` if the client order id already
        existed (the order was already handled: do not send it blindly again).
        """
        return self._insert_ignore(orders, {
            "client_order_id": msg.client_order_id, "signal_id": msg.signal_id,
            "correlation_id": msg.correlation_id or msg.signal_id, "symbol": msg.symbol,
            "side": str(msg.side), "quantity": msg.quantity, "reduce_only": msg.reduce_only,
            "stop_loss": msg.stop_loss, "take_profit": msg.take_profit,
            "status": str(OrderStatus.NEW), "venue_order_id": None, "reason": "",
            "created_ts": msg.ts, "updated_ts": msg.ts, "bar_seq": msg.bar_seq,
        })

    def mark_order_sent(self, client_order_id: str, ts: int) -> bool:
        """Record that the order is about to be sent to the venue (``sent_ts = ts`` ns,
        one more send attempt).  Returns ``False`` if the order has no row."""
        stmt = orders.update().where(orders.c.client_order_id == client_order_id).values(
            sent_ts=ts, send_attempts=orders.c.send_attempts + 1)
        with self._write() as conn:
            return conn.execute(stmt).rowcount == 1

    def clear_order_sent(self, client_order_id: str) -> bool:
        """Forget that the order was sent (``sent_ts = NULL``): it was established that
        it never reached the venue, so it may be sent without resolving it again."""
        stmt = orders.update().where(orders.c.client_order_id == client_order_id).values(
            sent_ts=None)
        with self._write() as conn:
            return conn.execute(stmt).rowcount == 1

    def order_sent_ts(self, client_order_id: str) -> int | None:
        """When the order was last sent (ns), ``None`` if never (or no such order)."""
        stmt = sa.select(orders.c.sent_ts).where(orders.c.client_order_id == client_order_id)
        with self.engine.connect() as conn:
            v = conn.execute(stmt).scalar()
        return None if v is None else int(v)

    def record_external_order(
        self, client_order_id: str, symbol: str, side: str, quantity: float, status: str,
        venue_order_id: str, reason: str = "", *, ts: int | None = None,
    ) -> bool:
        """Adopt an order found at the venue that we did not place (``external`` = true).

        ``quantity`` in base units; ``status`` an :class:`OrderStatus` value; ``ts`` ns
        (default now).  The correlation id is the client order id (it descends from no
        signal of ours).  Returns ``False`` if the client order id is already stored.
        """
        ts = now_ns() if ts is None else ts
        return self._insert_ignore(orders, {
            "client_order_id": client_order_id, "signal_id": "external",
            "correlation_id": client_order_id, "symbol": symbol, "side": str(side),
            "quantity": quantity, "reduce_only": False, "stop_loss": None,
            "take_profit": None, "status": str(OrderStatus(status)),
            "venue_order_id": venue_order_id, "reason": reason, "created_ts": ts,
            "updated_ts": ts, "bar_seq": None, "external": True,
        })

    def update_order_status(
        self,
        client_order_id: str,
        status: OrderStatus | str,
        venue_order_id: str | None = None,
        reason: str = "",
        *,
        ts: int | None = None,
        force: bool = False,
    ) -> bool:
        """Set an order's status (and venue id / reason when given).

        Statuses only move forward (``NEW``/``UNKNOWN`` < ``ACCEPTED`` <
        ``PARTIALLY_FILLED`` < terminal), so a stale redelivered event is ignored;
        ``force=True`` overrides that (reconciliation with the venue).  Returns
        ``True`` if a row changed, ``False`` if the order is unknown or the update
        was stale.  ``ts`` (ns, default now) becomes ``updated_ts``.
        """
        status = OrderStatus(status)
        values: dict[str, Any] = {"status": str(status),
                                  "updated_ts": now_ns() if ts is None else ts}
        if venue_order_id is not None:
            values["venue_order_id"] = venue_order_id
        if reason:
            values["reason"] = reason
        stmt = orders.update().where(orders.c.client_order_id == client_order_id)
        if not force:
            rank = _STATUS_RANK[status]
            allowed = [str(s) for s, r in _STATUS_RANK.items() if r <= rank]
            stmt = stmt.where(orders.c.status.in_(allowed))
        with self._write() as conn:
            return conn.execute(stmt.values(**values)).rowcount == 1

    def record_fill(self, msg: OrderFilled) -> bool:
        """Insert a fill; ``False`` if its ``fill_id`` is already stored.

        An empty ``correlation_id`` is taken from the stored order, if any.
        """
        dump = msg.model_dump(mode="json")
        row = {c.name: dump[c.name] for c in fills.columns}
        with self._write() as conn:
            if not row["correlation_id"]:
                q = sa.select(orders.c.correlation_id).where(
                    orders.c.client_order_id == msg.client_order_id)
                row["correlation_id"] = conn.execute(q).scalar() or ""
            stmt = _insert(conn, fills).values(**row).on_conflict_do_nothing()
            return conn.execute(stmt).rowcount == 1

    def upsert_position(self, msg: PositionChanged) -> bool:
        """Insert or replace a symbol's position, unless the stored one is newer.

        Returns ``True`` if the row was written, ``False`` for a stale update.
        """
        row = {"symbol": msg.symbol, "quantity": msg.quantity, "avg_price": msg.avg_price,
               "realized_pnl": msg.realized_pnl, "updated_ts": msg.ts}
        with self._write() as conn:
            ins = _insert(conn, positions).values(**row)
            stmt = ins.on_conflict_do_update(
                index_elements=[positions.c.symbol],
                set_={k: ins.excluded[k] for k in row if k != "symbol"},
                where=positions.c.updated_ts <= ins.excluded.updated_ts,
            )
            return conn.execute(stmt).rowcount == 1

    def record_equity_many(self, marks: Sequence[PortfolioMarked], chunk: int = 500) -> int:
        """Insert equity marks in batches, ignoring bar seqs already stored.

        Returns the number of new rows.
        """
        rows = [{"bar_seq": m.bar_seq, "bar_time": m.bar_time, "cash": m.cash,
                 "equity": m.equity, "exposure": m.exposure,
                 "positions": {k: v.model_dump() for k, v in m.positions.items()}}
                for m in marks]
        n = 0
        for i in range(0, len(rows), chunk):
            with self._write() as conn:
                stmt = _insert(conn, equity).values(rows[i:i + chunk]).on_conflict_do_nothing()
                n += max(conn.execute(stmt).rowcount, 0)
        return n

    def put_state(self, key: str, value: dict[str, Any]) -> None:
        """Insert or replace the durable value ``key`` (JSON object)."""
        self.swap_states({key: value})

    def put_state_if_absent(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """Store ``value`` under ``key`` unless a value is there; the value in force."""
        with self._write() as conn:
            stmt = _insert(conn, mesh_state).values(key=key, value=value, updated_ts=now_ns())
            conn.execute(stmt.on_conflict_do_nothing())
            row = conn.execute(sa.select(mesh_state.c.value).where(mesh_state.c.key == key))
            return dict(row.scalar_one())

    def swap_states(self, put: dict[str, dict[str, Any]],
                    delete: Sequence[str] = ()) -> None:
        """Write ``put`` and remove ``delete`` in one transaction (e.g. a halt reset:
        the latch goes, the reset record comes, never one without the other)."""
        with self._write() as conn:
            for key in delete:
                conn.execute(mesh_state.delete().where(mesh_state.c.key == key))
            for key, value in put.items():
                stmt = _insert(conn, mesh_state).values(key=key, value=value,
                                                        updated_ts=now_ns())
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=["key"],
                    set_={"value": stmt.excluded.value, "updated_ts": stmt.excluded.updated_ts},
                ))

    def delete_state(self, key: str) -> bool:
        """Remove ``key``; ``False`` if it was not there."""
        with self._write() as conn:
            return conn.execute(mesh_state.delete().where(mesh_state.c.key == key)).rowcount > 0

    def next_epoch(self) -> int:
        """Take the next deployment epoch (1 for a new database), atomically: a bar
        sequence that starts afresh gets a number no earlier sequence of this database
        had (``BarClosed.epoch``)."""
        with self._write() as conn:
            row = conn.execute(sa.select(mesh_state.c.value).where(
                mesh_state.c.key == EPOCH_STATE)).first()
            epoch = int(dict(row[0]).get("epoch", 0)) + 1 if row else 1
            stmt = _insert(conn, mesh_state).values(
                key=EPOCH_STATE, value={"epoch": epoch}, updated_ts=now_ns())
            conn.execute(stmt.on_conflict_do_update(
                index_elements=[mesh_state.c.key],
                set_={"value": {"epoch": epoch}, "updated_ts": now_ns()}))
        return epoch

    def states(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every durable value whose key starts with ``prefix`` (key -> value)."""
        stmt = sa.select(mesh_state.c.key, mesh_state.c.value).where(
            mesh_state.c.key.startswith(prefix, autoescape=True))
        with self.engine.connect() as conn:
            return {k: dict(v) for k, v in conn.execute(stmt)}

    def get_state(self, key: str) -> dict[str, Any] | None:
        """The durable value of ``key`` or ``None``."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(mesh_state.c.value).where(mesh_state.c.key == key)).first()
        return None if row is None else dict(row[0])

    # ------------------------------------------------------------ reads
    def get_order(self, client_order_id: str) -> dict[str, Any] | None:
        """The stored order as a dict, or ``None``."""
        rows = self._select(orders, None, client_order_id=client_order_id)
        return rows[0] if rows else None

    def order_fills(self, client_order_id: str) -> list[dict[str, Any]]:
        """The fills of one order, in execution order."""
        return self._select(fills, None, client_order_id=client_order_id)

    def fills(self, symbol: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Fills in execution order (bar seq, fill time, ts); ``limit`` keeps the last N."""
        return self._select(fills, limit, symbol=symbol)

    def orders(
        self, status: OrderStatus | str | None = None, symbol: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Orders by creation time, optionally filtered by status and symbol."""
        st = None if status is None else str(OrderStatus(status))
        return self._select(orders, limit, status=st, symbol=symbol)

    def orders_by_status(self) -> dict[str, int]:
        """Number of orders per status."""
        stmt = sa.select(orders.c.status, sa.func.count()).group_by(orders.c.status)
        with self.engine.connect() as conn:
            return {s: int(n) for s, n in conn.execute(stmt)}

    def positions(self) -> list[dict[str, Any]]:
        """Current position per symbol (signed quantity, base units)."""
        return self._select(positions)

    def equity_curve(self) -> pd.DataFrame:
        """Equity marks by bar seq.

        Columns ``bar_seq, bar_time, cash, equity, exposure, positions`` (the last a
        dict ``symbol -> {quantity, avg_price, mark}`` of the open positions).
        """
        return pd.DataFrame(self._select(equity), columns=[c.name for c in equity.columns])

    def signals(self, symbol: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Signals by time, optionally for one symbol; ``limit`` keeps the last N."""
        return self._select(signals, limit, symbol=symbol)

    def decisions(
        self, signal_id: str | None = None, limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Compliance and risk decisions by time, optionally for one signal."""
        return self._select(decisions, limit, signal_id=signal_id)

    def decisions_for(self, signal_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Decisions on any of ``signal_ids``, by time."""
        if not signal_ids:
            return []
        return self._select(decisions, None, decisions.c.signal_id.in_(list(signal_ids)))

    def orders_for(self, signal_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Orders sent for any of ``signal_ids``, by creation time."""
        if not signal_ids:
            return []
        return self._select(orders, None, orders.c.signal_id.in_(list(signal_ids)))

    def audit(
        self, correlation_id: str | None = None, limit: int | None = None,
        action: str | None = None,
    ) -> list[dict[str, Any]]:
        """Audit entries by time, optionally for one correlation id or action."""
        return self._select(audit, limit, correlation_id=correlation_id, action=action)

    def trace(self, correlation_id: str) -> dict[str, Any]:
        """Everything descended from one signal, joined by ``correlation_id``.

        Returns
        -------
        dict
            ``{"correlation_id", "signal": dict | None, "decisions": [...],
            "orders": [...], "fills": [...], "audit": [...]}``, each list in time order.
        """
        cid = correlation_id
        sig = self._select(signals, None, sa.or_(signals.c.id == cid,
                                                 signals.c.correlation_id == cid))
        return {
            "correlation_id": cid,
            "signal": sig[0] if sig else None,
            "decisions": self._select(decisions, None, sa.or_(
                decisions.c.correlation_id == cid, decisions.c.signal_id == cid)),
            "orders": self._select(orders, None, sa.or_(
                orders.c.correlation_id == cid, orders.c.signal_id == cid)),
            "fills": self._select(fills, None, correlation_id=cid),
            "audit": self._select(audit, None, correlation_id=cid),
        }

    # ------------------------------------------------------------ optimizer runs
    def record_optimizer_run(
        self, run_id: str, strategy: str, objective: str, config: dict[str, Any],
        symbols: Sequence[str], data_start: int | None = None, data_end: int | None = None,
        *, started_ts: int | None = None,
    ) -> bool:
        """Insert a run as ``running``; ``False`` if ``run_id`` is already stored.

        ``config`` is the run's configuration (JSON object); ``data_start``/``data_end``
        the data's first bar and end (ns UTC); ``started_ts`` ns, default now.
        """
        return self._insert_ignore(optimizer_runs, {
            "id": run_id, "strategy": strategy, "objective": objective, "config": config,
            "symbols": list(symbols), "data_start": data_start, "data_end": data_end,
            "started_ts": now_ns() if started_ts is None else started_ts,
            "status": "running",
        })

    def record_optimizer_progress(self, msg: OptimizerProgressed) -> bool:
        """Insert one generation's statistics; ``False`` if (run, fold, generation) is stored."""
        return self._insert_ignore(optimizer_generations, {
            "run_id": msg.run_id, "fold": msg.fold, "generation": msg.generation,
            "best": msg.best, "mean": msg.mean, "std": msg.std,
            "evaluations": msg.evaluations, "best_params": dict(msg.best_params), "ts": msg.ts,
        })

    def finish_optimizer_run(self, msg: OptimizerFinished) -> bool:
        """Store a run's outcome (status, best parameters, scores, folds).

        Only a ``running`` run changes, so a redelivered result is a no-op (``False``);
        a run never recorded is inserted with an empty config.
        """
        values: dict[str, Any] = {
            "status": msg.status, "finished_ts": msg.finished_ns or msg.ts,
            "best_params": dict(msg.best_params), "in_sample": msg.in_sample,
            "out_of_sample": msg.out_of_sample, "mean_in_sample": msg.mean_in_sample,
            "mean_out_of_sample": msg.mean_out_of_sample, "overfit": msg.overfit,
            "folds": [f.model_dump(mode="json") for f in msg.folds],
            "evaluations": msg.evaluations, "error": msg.error,
        }
        with self._write() as conn:
            stmt = optimizer_runs.update().where(
                optimizer_runs.c.id == msg.run_id, optimizer_runs.c.status == "running")
            if conn.execute(stmt.values(**values)).rowcount == 1:
                return True
            row = {"id": msg.run_id, "strategy": msg.strategy, "objective": msg.objective,
                   "config": {}, "symbols": list(msg.symbols),
                   "started_ts": msg.started_ns or msg.ts, **values}
            ins = _insert(conn, optimizer_runs).values(**row).on_conflict_do_nothing()
            return conn.execute(ins).rowcount == 1

    def optimizer_runs(
        self, strategy: str | None = None, limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Runs by start time (oldest first), optionally of one strategy; ``limit``
        keeps the last N."""
        t = optimizer_runs
        stmt = sa.select(t)
        if strategy is not None:
            stmt = stmt.where(t.c.strategy == strategy)
        order = [t.c.started_ts, t.c.id]
        if limit is None:
            stmt = stmt.order_by(*order)
        else:
            stmt = stmt.order_by(*[c.desc() for c in order]).limit(limit)
        with self.engine.connect() as conn:
            out = [dict(r._mapping) for r in conn.execute(stmt)]
        return out if limit is None else out[::-1]

    def optimizer_run(self, run_id: str) -> dict[str, Any] | None:
        """One run with its ``generations`` (by fold, generation), or ``None``."""
        t, g = optimizer_runs, optimizer_generations
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == run_id)).first()
            if row is None:
                return None
            gens = conn.execute(sa.select(g).where(g.c.run_id == run_id)
                                .order_by(g.c.fold, g.c.generation))
            return {**dict(row._mapping), "generations": [dict(r._mapping) for r in gens]}


#: Natural order of each table's rows (oldest first).
_ORDER = {
    "signals": ("ts", "id"), "decisions": ("ts", "id"),
    "orders": ("created_ts", "client_order_id"), "fills": ("bar_seq", "fill_time", "ts"),
    "positions": ("symbol",), "equity": ("bar_seq",), "audit": ("ts", "id"),
}
