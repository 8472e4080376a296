"""Orders and their fills: intents, sends, venue statuses, adopted orders; their reads.

An order's status only moves forward (:data:`_STATUS_RANK`) unless reconciliation
forces it; ``sent_ts`` is written durably before each venue call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from backend.messages import OrderFilled, OrderStatus, SubmitOrder, now_ns
from backend.persistence.base import StoreBase, dialect_insert
from backend.persistence.schema import fills, orders

#: Order status ranks: a stale event never moves an order back to a lower rank.
_STATUS_RANK = {
    OrderStatus.NEW: 0, OrderStatus.UNKNOWN: 0, OrderStatus.ACCEPTED: 1,
    OrderStatus.PARTIALLY_FILLED: 2, OrderStatus.FILLED: 3,
    OrderStatus.CANCELLED: 3, OrderStatus.REJECTED: 3,
}


class OrderQueries(StoreBase):
    """:class:`~backend.persistence.Store` queries of the ``orders`` and ``fills`` tables."""

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
        with self._read() as conn:
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
            stmt = dialect_insert(conn, fills).values(**row).on_conflict_do_nothing()
            return conn.execute(stmt).rowcount == 1

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
        with self._read() as conn:
            return {s: int(n) for s, n in conn.execute(stmt)}

    def orders_for(self, signal_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Orders sent for any of ``signal_ids``, by creation time."""
        if not signal_ids:
            return []
        return self._select(orders, None, orders.c.signal_id.in_(list(signal_ids)))
