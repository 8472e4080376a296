"""Unit tests for backend.persistence on a temporary SQLite file."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.messages import (
    AuditRecorded,
    ComplianceDecided,
    ExitReason,
    OrderFilled,
    OrderStatus,
    PortfolioMarked,
    PositionChanged,
    PositionSnapshot,
    RiskDecided,
    Side,
    SignalGenerated,
    SubmitOrder,
    client_order_id_for,
)
from backend.persistence import Store, create_all, make_engine


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sub' / 'mesh.db'}"


@pytest.fixture
def store(url: str) -> Store:
    s = Store(url)
    yield s
    s.close()


def _signal(i: int = 0, symbol: str = "ETH/BTC") -> SignalGenerated:
    sid = f"sig{i}"
    return SignalGenerated(
        id=sid, correlation_id=sid, source="strategy:ETHBTC", symbol=symbol, side=Side.BUY,
        confidence=0.9, entry_price=0.05, stop_loss=0.049, take_profit=0.052,
        reason="sma cross", strategy="sma_cross", params={"fast": 5, "slow": 20},
        bar_seq=10 + i, bar_time=1_000 + i,
    )


def _chain(sig: SignalGenerated):
    comp = ComplianceDecided(id=f"c-{sig.id}", source="compliance", correlation_id=sig.id,
                             approved=True, rule="ok", reason="", signal=sig)
    risk = RiskDecided(id=f"r-{sig.id}", source="risk", correlation_id=sig.id, approved=True,
                       rule="ok", reason="", signal=sig, quantity=2.0, notional=0.1,
                       equity=1.0)
    coid = client_order_id_for(sig.id)
    order = SubmitOrder(id=f"o-{sig.id}", source="risk", correlation_id=sig.id,
                        client_order_id=coid, symbol=sig.symbol, side=sig.side, quantity=2.0,
                        stop_loss=sig.stop_loss, take_profit=sig.take_profit,
                        signal_id=sig.id, bar_seq=sig.bar_seq)
    fill = OrderFilled(id=f"f-{sig.id}", source="execution", correlation_id=sig.id,
                       fill_id=f"fill-{sig.id}", client_order_id=coid, symbol=sig.symbol,
                       side=sig.side, quantity=2.0, price=0.0501, fee=0.0001,
                       bar_seq=sig.bar_seq + 1, fill_time=sig.bar_time + 1)
    return comp, risk, order, fill


def _count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def test_engine_pragmas_and_parent_dir(url: str, tmp_path: Path) -> None:
    engine = make_engine(url)
    create_all(engine)
    create_all(engine)  # idempotent
    assert (tmp_path / "sub" / "mesh.db").exists()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_memory_engine_works() -> None:
    s = Store("sqlite:///:memory:")
    assert s.record_signal(_signal())
    assert len(s.signals()) == 1


def test_every_insert_is_idempotent(store: Store) -> None:
    sig = _signal()
    comp, risk, order, fill = _chain(sig)
    assert store.record_signal(sig) is True
    assert store.record_signal(sig) is False
    assert store.record_decision(comp, "compliance") is True
    assert store.record_decision(comp, "compliance") is False
    assert store.record_decision(risk) is True
    assert store.record_decision(risk) is False
    assert store.record_order_intent(order) is True
    assert store.record_order_intent(order) is False
    assert store.record_fill(fill) is True
    assert store.record_fill(fill) is False
    assert store.record_audit("risk", "approve", "approved", "ok", sig.id, sig.id) is True
    assert store.record_audit("risk", "approve", "approved", "ok", sig.id, sig.id) is False
    ev = AuditRecorded(source="risk", actor="risk", action="size", decision="approved",
                       reason="", subject_id=sig.id, correlation_id=sig.id)
    assert store.record_audit_event(ev) is True
    assert store.record_audit_event(ev) is False
    snap = PositionSnapshot(quantity=2.0, avg_price=0.05, mark=0.051)
    marks = [PortfolioMarked(source="execution", bar_seq=i, bar_time=100 * i, cash=1.0,
                             equity=1.0 + i / 100, exposure=0.0, day=0, day_start_equity=1.0,
                             positions={"ETH/BTC": snap}) for i in range(3)]
    assert store.record_equity_many(marks) == 3
    assert store.record_equity_many(marks + [marks[0].model_copy(update={"bar_seq": 3})]) == 1
    for table, n in [("signals", 1), ("decisions", 2), ("orders", 1), ("fills", 1),
                     ("audit", 2), ("equity", 4)]:
        assert _count(store, table) == n, table
    dec = {d["stage"]: d for d in store.decisions()}
    assert dec["risk"]["quantity"] == 2.0 and dec["compliance"]["quantity"] is None
    assert store.signals()[0]["params"] == {"fast": 5, "slow": 20}
    eq = store.equity_curve()
    assert list(eq["bar_seq"]) == [0, 1, 2, 3]
    assert list(eq.columns) == ["bar_seq", "bar_time", "cash", "equity", "exposure", "positions"]
    assert eq["positions"][0] == {"ETH/BTC": {"quantity": 2.0, "avg_price": 0.05, "mark": 0.051}}


def test_order_status_moves_forward_only(store: Store) -> None:
    _, _, order, _ = _chain(_signal())
    coid = order.client_order_id
    assert store.update_order_status(coid, OrderStatus.ACCEPTED, "v-1") is False  # unknown
    store.record_order_intent(order)
    assert store.get_order(coid)["status"] == "NEW"
    assert store.update_order_status(coid, OrderStatus.ACCEPTED, venue_order_id="v-1")
    assert store.update_order_status(coid, "FILLED")
    # a stale redelivered ACCEPTED does not move a filled order back
    assert store.update_order_status(coid, OrderStatus.ACCEPTED) is False
    row = store.get_order(coid)
    assert row["status"] == "FILLED" and row["venue_order_id"] == "v-1"
    assert store.update_order_status(coid, OrderStatus.UNKNOWN, reason="recon", force=True)
    assert store.get_order(coid)["reason"] == "recon"
    assert store.update_order_status("nope", OrderStatus.FILLED) is False
    assert store.get_order("nope") is None
    assert store.orders_by_status() == {"UNKNOWN": 1}
    assert [o["client_order_id"] for o in store.orders(status="UNKNOWN")] == [coid]
    assert store.orders(status=OrderStatus.NEW) == []
    assert store.orders(symbol="LTC/BTC") == []


def test_position_upsert_ignores_stale(store: Store) -> None:
    new = PositionChanged(source="execution", ts=200, symbol="ETH/BTC", quantity=2.0,
                          avg_price=0.05, realized_pnl=0.0)
    old = new.model_copy(update={"ts": 100, "quantity": 1.0})
    newer = new.model_copy(update={"ts": 300, "quantity": 0.0, "realized_pnl": 0.01})
    assert store.upsert_position(new)
    assert store.upsert_position(old) is False
    assert store.positions()[0]["quantity"] == 2.0
    assert store.upsert_position(newer)
    pos = store.positions()
    assert len(pos) == 1 and pos[0]["quantity"] == 0.0 and pos[0]["realized_pnl"] == 0.01


def test_readers_limit_keeps_latest(store: Store) -> None:
    for i in range(5):
        store.record_signal(_signal(i))
    assert [s["id"] for s in store.signals(limit=2)] == ["sig3", "sig4"]
    assert len(store.signals(symbol="ETH/BTC")) == 5
    assert store.signals(symbol="LTC/BTC") == []


def test_trace_joins_by_correlation_id(store: Store) -> None:
    for i in range(2):  # a second, unrelated chain must not leak into the trace
        sig = _signal(i)
        comp, risk, order, fill = _chain(sig)
        store.record_signal(sig)
        store.record_decision(comp)
        store.record_decision(risk)
        store.record_order_intent(order)
        store.record_fill(fill.model_copy(update={"correlation_id": ""}))  # from the order
        store.record_audit("execution", "fill", "filled", "", fill.fill_id, sig.id)
    t = store.trace("sig0")
    assert t["signal"]["id"] == "sig0"
    assert [d["stage"] for d in t["decisions"]] == ["compliance", "risk"]
    assert [o["client_order_id"] for o in t["orders"]] == [client_order_id_for("sig0")]
    assert [f["fill_id"] for f in t["fills"]] == ["fill-sig0"]
    assert t["fills"][0]["exit_reason"] == ExitReason.ENTRY.value
    assert len(t["audit"]) == 1
    assert store.trace("missing") == {"correlation_id": "missing", "signal": None,
                                      "decisions": [], "orders": [], "fills": [], "audit": []}


def test_two_engines_same_file_both_write(url: str) -> None:
    a, b = Store(url), Store(url)
    sig = _signal()
    comp, risk, order, fill = _chain(sig)
    assert a.record_signal(sig)
    assert b.record_signal(sig) is False  # sees a's row
    assert b.record_decision(comp)
    assert a.record_order_intent(order)
    assert b.record_fill(fill)
    # interleaved open read snapshot in one, write in the other
    with a.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM signals")).scalar_one() == 1
        assert b.record_signal(_signal(1))
    assert len(a.signals()) == 2 and len(b.fills()) == 1
    assert a.trace(sig.id)["fills"][0]["fill_id"] == fill.fill_id
    a.close()
    b.close()


def _writer(url: str, start: int, n: int) -> None:
    s = Store(url)
    for i in range(start, start + n):
        s.record_equity_many([PortfolioMarked(source="p", bar_seq=i, bar_time=i, cash=1.0,
                                              equity=1.0, exposure=0.0, day=0,
                                              day_start_equity=1.0)])
        s.record_audit("w", "write", "ok", subject_id=str(i))
    s.close()


def test_concurrent_processes_write_same_file(url: str) -> None:
    Store(url).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, k * 50, 50)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = Store(url)
    assert len(s.equity_curve()) == 150
    assert _count(s, "audit") == 150
