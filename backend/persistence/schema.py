"""The tables of the mesh's database (SQLAlchemy Core metadata, no ORM).

There are no foreign keys between tables on purpose: agents record their rows in
whatever order the bus delivers them (a fill may be written before its signal).
Columns added after a table was first released are listed in
:mod:`backend.persistence.migrations`.

Units: prices in quote currency per base unit, quantities in base units, notional,
cash, fees and P&L in quote currency (``Float``: paper money), times in ns since the
Unix epoch (UTC, ``BigInteger``).
"""

from __future__ import annotations

import sqlalchemy as sa

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
