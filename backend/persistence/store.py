"""The :class:`Store` facade: every durable read and write of the mesh over one engine.

SQLAlchemy Core (no ORM) over a SQLite file (WAL) or PostgreSQL
(:mod:`backend.persistence.engine`).  :class:`Store` is composed of one query mixin per
domain (signals and decisions, orders and fills, the portfolio, the audit trail, the
mesh's durable state, optimizer runs), all built on :class:`~backend.persistence.base.StoreBase`;
it adds :meth:`Store.trace`, the one read that joins them.

Every ``record_*`` method is idempotent (insert-or-ignore on the primary key), so an
at-least-once consumer can call it again on redelivery.  Engines must not cross a
``fork``: each process calls :func:`~backend.persistence.engine.make_engine` itself.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from backend.persistence.audit_queries import AuditQueries
from backend.persistence.optimizer_queries import OptimizerQueries
from backend.persistence.order_queries import OrderQueries
from backend.persistence.portfolio_queries import PortfolioQueries
from backend.persistence.schema import audit, decisions, fills, orders, signals
from backend.persistence.signal_queries import SignalQueries
from backend.persistence.state_queries import StateQueries


class Store(
    SignalQueries, OrderQueries, PortfolioQueries, AuditQueries, StateQueries,
    OptimizerQueries,
):
    """Small, explicit, idempotent reads and writes over one engine.

    Parameters
    ----------
    engine
        An :class:`~sqlalchemy.engine.Engine` or a URL for
        :func:`~backend.persistence.engine.make_engine`.
    create
        Run :func:`~backend.persistence.migrations.create_all` first (default ``True``).
    """

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
