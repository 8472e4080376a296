"""Reconciliation comparisons (backend.venues.reconcile) and the external-column migration."""

from __future__ import annotations

import sqlalchemy as sa

from backend import persistence
from backend.messages import OrderFilled, OrderStatus, Side
from backend.venues.broker import VenueOrder
from backend.venues.reconcile import (
    change,
    missing_fills,
    order_fix,
    order_from_row,
    position_mismatches,
)


def _row(status: str, coid: str = "c1") -> dict:
    return {"client_order_id": coid, "status": status, "symbol": "ETH/BTC", "side": "BUY",
            "quantity": 2.0, "reduce_only": False, "stop_loss": 0.09, "take_profit": 0.12,
            "signal_id": "sig", "correlation_id": "sig", "bar_seq": 4, "created_ts": 10}


def _vo(status: OrderStatus, filled: float = 0.0) -> VenueOrder:
    return VenueOrder("c1", "v1", "ETH/BTC", Side.BUY, 2.0, filled, 0.1 if filled else None,
                      status)


def _fill(fid: str) -> OrderFilled:
    return OrderFilled(source="v", fill_id=fid, client_order_id="c1", symbol="ETH/BTC",
                       side=Side.BUY, quantity=1, price=0.1, fee=0, bar_seq=1, fill_time=5)


def test_order_fix() -> None:
    assert order_fix(_row("NEW"), None) is None  # its SubmitOrder will be handled again
    fix = order_fix(_row("UNKNOWN"), None)
    assert fix is not None and (fix.before, fix.after) == ("UNKNOWN", "NEW")
    assert order_fix(_row("ACCEPTED"), None).after == "NEW"  # type: ignore[union-attr]
    assert order_fix(_row("ACCEPTED"), _vo(OrderStatus.ACCEPTED)) is None
    fix = order_fix(_row("ACCEPTED"), _vo(OrderStatus.FILLED, 2.0))
    assert fix is not None and fix.after == "FILLED" and fix.venue_order_id == "v1"
    assert "filled 2 of 2" in fix.why
    assert order_fix(_row("UNKNOWN"), _vo(OrderStatus.PARTIALLY_FILLED, 1)).after == \
        "PARTIALLY_FILLED"  # type: ignore[union-attr]


def test_missing_fills_and_positions() -> None:
    got = missing_fills({"a"}, [_fill("a"), _fill("b"), _fill("b"), _fill("c")])
    assert [f.fill_id for f in got] == ["b", "c"]
    mm = position_mismatches({"ETH/BTC": 2.0, "LTC/BTC": 1.0}, {"ETH/BTC": 2.0 + 1e-13,
                                                                "ADA/BTC": -5.0})
    assert [(m.symbol, m.stored, m.reference) for m in mm] == [
        ("ADA/BTC", 0.0, -5.0), ("LTC/BTC", 1.0, 0.0)]
    assert change(2.0, 1.5) == "before=2 after=1.5" and change("a", "b") == "before=a after=b"


def test_order_from_row_rebuilds_the_command() -> None:
    o = order_from_row(_row("ACCEPTED"), "execution")
    assert (o.client_order_id, o.side, o.quantity, o.stop_loss, o.bar_seq) == (
        "c1", Side.BUY, 2.0, 0.09, 4)


def test_an_old_database_gets_the_added_columns(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = persistence.make_engine(url)
    md = sa.MetaData()
    added = {"external", "sent_ts", "send_attempts"}
    cols = [sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in persistence.orders.columns if c.name not in added]
    old = sa.Table("orders", md, *cols)
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(old.insert().values(
            client_order_id="a", symbol="X", side="BUY", quantity=1.0, reduce_only=False,
            status="NEW", created_ts=1, updated_ts=1))
    store = persistence.Store(persistence.make_engine(url))  # migrates
    row = store.get_order("a")
    assert row["external"] is False and row["sent_ts"] is None and row["send_attempts"] == 0
    assert store.mark_order_sent("a", 5) and store.order_sent_ts("a") == 5
    assert store.record_external_order("ext-9", "ETH/BTC", "SELL", 1.0, "ACCEPTED", "9")
    row = store.get_order("ext-9")
    assert row["external"] is True and row["status"] == "ACCEPTED"
    assert persistence.Store(persistence.make_engine(url)).get_order("ext-9")["external"]
