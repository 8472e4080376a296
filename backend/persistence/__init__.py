"""Durable state of the mesh: signals, decisions, orders, fills, positions, equity, audit.

* :mod:`backend.persistence.engine` -- Engines over SQLite or PostgreSQL: URL handling,
  the SQLite pragmas, explicit ``BEGIN``;
* :mod:`backend.persistence.schema` -- The tables of the mesh's database (SQLAlchemy Core
  metadata, no ORM);
* :mod:`backend.persistence.migrations` -- Schema creation and the hand-written upgrades of
  older databases (added columns);
* :mod:`backend.persistence.base` -- How every query of the
  :class:`~backend.persistence.Store` talks to the database;
* :mod:`backend.persistence.signal_queries` -- Signals and the compliance and risk
  decisions on them: their writes and reads;
* :mod:`backend.persistence.order_queries` -- Orders and their fills: intents, sends,
  venue statuses, adopted orders; their reads;
* :mod:`backend.persistence.portfolio_queries` -- The portfolio: each symbol's position and
  the equity mark of every bar;
* :mod:`backend.persistence.audit_queries` -- The audit trail: who decided what about which
  signal or order, and why;
* :mod:`backend.persistence.state_queries` -- Small durable key -> JSON values of the mesh
  (``mesh_state``): halt latches, the epoch;
* :mod:`backend.persistence.optimizer_queries` -- GA optimizer runs: a run's start, its
  generations' statistics, its outcome; their reads;
* :mod:`backend.persistence.store` -- The :class:`Store` facade: every durable read and
  write of the mesh over one engine.

Import from here: :class:`Store`, :func:`make_engine`, :func:`create_all`, the tables and
:data:`EPOCH_STATE` are re-exported.
"""

from backend.persistence.engine import make_engine
from backend.persistence.migrations import create_all
from backend.persistence.schema import (
    audit,
    decisions,
    equity,
    fills,
    mesh_state,
    metadata,
    optimizer_generations,
    optimizer_runs,
    orders,
    positions,
    signals,
)
from backend.persistence.state_queries import EPOCH_STATE
from backend.persistence.store import Store

__all__ = [
    "EPOCH_STATE",
    "Store",
    "audit",
    "create_all",
    "decisions",
    "equity",
    "fills",
    "make_engine",
    "mesh_state",
    "metadata",
    "optimizer_generations",
    "optimizer_runs",
    "orders",
    "positions",
    "signals",
]
