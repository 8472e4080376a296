"""The drill's books check: a consistent record passes; each kind of damage is caught."""

from __future__ import annotations

import random
from pathlib import Path

import fakeredis
import orjson
import pytest

from backend import channels
from backend.bus import DATA_FIELD
from backend.messages import (
    ComplianceDecided,
    OrderFilled,
    PositionChanged,
    RiskDecided,
    Side,
    SignalGenerated,
    SubmitOrder,
)
from backend.persistence import Store, make_engine
from backend.venues.paper.adapter import FILLS_HASH, ORDERS_HASH
from orchestrator.drills.books import check_books
from orchestrator.drills.faults import moments

T0 = 1_700_000_000_000_000_000


def _signal(i: int) -> SignalGenerated:
    return SignalGenerated(
        id=f"sig-{i}", ts=T0 + i, source="strategy:ETHBTC", correlation_id=f"sig-{i}",
        symbol="ETH/BTC", side=Side.BUY, confidence=0.9, entry_price=0.05, stop_loss=0.049,
        take_profit=0.052, reason="test", strategy="sma_cross", bar_seq=i, bar_time=T0 + i)


class Mesh:
    """A tiny consistent mesh record: signal 1 approved and filled, signal 2 rejected."""

    def __init__(self, tmp_path: Path) -> None:
        self.r = fakeredis.FakeRedis()
        self.store = Store(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
        s1, s2 = _signal(1), _signal(2)
        for s in (s1, s2):
            self.xadd(channels.SIGNALS, s)
            self.store.record_signal(s)
        self.store.record_decision(ComplianceDecided(
            id="c1", source="compliance", correlation_id=s1.id, approved=True, rule="",
            reason="ok", signal=s1))
        self.store.record_decision(RiskDecided(
            id="r1", source="risk", correlation_id=s1.id, approved=True, rule="", reason="ok",
            signal=s1, quantity=2.0, notional=0.1))
        self.store.record_decision(ComplianceDecided(
            id="c2", source="compliance", correlation_id=s2.id, approved=False,
            rule="duplicate", reason="duplicate signal", signal=s2))
        self.order = SubmitOrder(
            id="o1", source="risk", correlation_id=s1.id, client_order_id="tm-o-1",
            symbol="ETH/BTC", side=Side.BUY, quantity=2.0, signal_id=s1.id, bar_seq=1)
        self.xadd(channels.ORDERS, self.order)
        self.store.record_order_intent(self.order)
        from backend.messages import OrderStatus

        self.store.update_order_status("tm-o-1", OrderStatus.FILLED, "paper-tm-o-1")
        self.fill = OrderFilled(
            id="f1", source="execution", correlation_id=s1.id, fill_id="fill-1",
            client_order_id="tm-o-1", symbol="ETH/BTC", side=Side.BUY, quantity=2.0,
            price=0.05, fee=0.0001, bar_seq=2, fill_time=T0 + 2)
        self.xadd(channels.TRADING_EVENTS, self.fill)
        self.store.record_fill(self.fill)
        self.store.upsert_position(PositionChanged(
            id="p1", source="execution", correlation_id=s1.id, symbol="ETH/BTC",
            quantity=2.0, avg_price=0.05, realized_pnl=0.0))
        self.r.hset(ORDERS_HASH, "tm-o-1", "FILLED")
        self.r.hset(FILLS_HASH, "fill-1", self.fill.to_json())
        self.r.set(channels.PAPER_VENUE_KEY, orjson.dumps(
            {"cash": 1.0, "positions": {"ETH/BTC": {"symbol": "ETH/BTC", "quantity": 2.0}}}))
        for stream, group in ((channels.SIGNALS, "compliance"), (channels.ORDERS, "execution")):
            self.r.xgroup_create(stream, group, id="0")
            self.r.xreadgroup(group, group, {stream: ">"})
            for entry_id, _ in self.r.xrange(stream):
                self.r.xack(stream, group, entry_id)

    def xadd(self, stream: str, msg: object) -> str:
        return self.r.xadd(stream, {DATA_FIELD: msg.to_json()}).decode()  # type: ignore[attr-defined]

    def failed(self) -> dict[str, str]:
        rep = check_books(self.r, self.store)
        return {c.name: c.detail for c in rep.checks if not c.ok}


@pytest.fixture
def mesh(tmp_path: Path) -> Mesh:
    return Mesh(tmp_path)


def test_consistent_books_pass(mesh: Mesh) -> None:
    rep = check_books(mesh.r, mesh.store)
    assert rep.ok, rep.failures()
    assert (rep.signals, rep.orders, rep.fills, rep.lost, rep.duplicated) == (2, 1, 1, 0, 0)


def test_a_run_without_orders_proved_nothing_and_fails(tmp_path: Path) -> None:
    """Issue 20, item 8: a drill with a small --limit passed with 0 orders."""
    r = fakeredis.FakeRedis()
    store = Store(make_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}"))
    rep = check_books(r, store)
    assert not rep.ok and rep.orders == 0
    (failure,) = rep.failures()
    assert failure.startswith("orders_placed: no order was placed") and "--limit" in failure


def test_order_sent_twice_is_a_duplicate(mesh: Mesh) -> None:
    mesh.xadd(channels.ORDERS, mesh.order.model_copy(update={"id": "o1-again"}))
    mesh.r.xreadgroup("execution", "execution", {channels.ORDERS: ">"})
    for entry_id, _ in mesh.r.xrange(channels.ORDERS):
        mesh.r.xack(channels.ORDERS, "execution", entry_id)
    rep = check_books(mesh.r, mesh.store)
    assert "orders_unique" in mesh.failed() and rep.duplicated == 1


def test_unrecorded_fill_is_lost(mesh: Mesh) -> None:
    extra = mesh.fill.model_copy(update={"id": "f2", "fill_id": "fill-2"})
    mesh.r.hset(FILLS_HASH, "fill-2", extra.to_json())
    assert "venue_fills" in mesh.failed()
    assert check_books(mesh.r, mesh.store).lost == 1


def test_fill_price_differing_from_the_venue_fails(mesh: Mesh) -> None:
    mesh.r.hset(FILLS_HASH, "fill-1", mesh.fill.model_copy(update={"price": 0.051}).to_json())
    assert "differ" in mesh.failed()["venue_fills"]


def test_approved_signal_without_order_is_unaccounted(mesh: Mesh) -> None:
    s3 = _signal(3)
    mesh.xadd(channels.SIGNALS, s3)
    mesh.store.record_signal(s3)
    mesh.store.record_decision(ComplianceDecided(
        id="c3", source="compliance", correlation_id=s3.id, approved=True, rule="",
        reason="ok", signal=s3))
    mesh.store.record_decision(RiskDecided(
        id="r3", source="risk", correlation_id=s3.id, approved=True, rule="", reason="ok",
        signal=s3, quantity=1.0, notional=0.05))
    failed = mesh.failed()
    assert "approved by risk, no order" in failed["signals_accounted"]
    assert "nothing_pending" in failed  # the new signal was never read by compliance


def test_signals_in_flight_when_redis_lost_its_data_are_reported_not_failed(mesh: Mesh
                                                                         ) -> None:
    """Recorded before the wipe with no decision: went with the streams (counted apart);
    one recorded after it must still be whole."""
    for i in (3, 4):
        mesh.store.record_signal(_signal(i))
    books = check_books(mesh.r, mesh.store, data_lost_ns=T0 + 4)
    check = {c.name: c for c in books.checks}["signals_accounted"]
    assert not check.ok and books.lost == 1 and books.lost_with_data == 1
    assert "sig-4: no compliance decision" in check.detail
    assert "in flight when Redis lost its data: 1 (sig-3" in check.detail
    assert check_books(mesh.r, mesh.store, data_lost_ns=T0 + 5).lost_with_data == 2


def test_position_that_is_not_the_sum_of_fills_fails(mesh: Mesh) -> None:
    mesh.r.set(channels.PAPER_VENUE_KEY, orjson.dumps(
        {"positions": {"ETH/BTC": {"symbol": "ETH/BTC", "quantity": 1.5}}}))
    assert "venue 1.5" in mesh.failed()["positions"]


def test_venue_status_differing_from_ours_fails(mesh: Mesh) -> None:
    mesh.r.hset(ORDERS_HASH, "tm-o-1", "CANCELLED")
    assert "status differs" in mesh.failed()["venue_orders"]


def test_pending_entry_fails(mesh: Mesh) -> None:
    mesh.xadd(channels.ORDERS, mesh.order.model_copy(update={
        "id": "o2", "client_order_id": "tm-o-2"}))
    mesh.r.xreadgroup("execution", "execution", {channels.ORDERS: ">"})  # read, never acked
    failed = mesh.failed()
    assert "orders/execution: pending 1" in failed["nothing_pending"]
    assert "orders_recorded" in failed


def test_undecodable_entries_are_ignored_by_the_books(mesh: Mesh) -> None:
    mesh.r.xadd(channels.SIGNALS, {DATA_FIELD: b"\xff not json"})
    mesh.r.xreadgroup("compliance", "compliance", {channels.SIGNALS: ">"})
    for entry_id, _ in mesh.r.xrange(channels.SIGNALS):
        mesh.r.xack(channels.SIGNALS, "compliance", entry_id)
    assert check_books(mesh.r, mesh.store).ok


def test_fault_moments_are_seeded_and_inside_the_window() -> None:
    a = moments(random.Random("7:hang:0"), 1000, 3, 0.2, 0.4)  # noqa: S311
    b = moments(random.Random("7:hang:0"), 1000, 3, 0.2, 0.4)  # noqa: S311
    assert a == b == sorted(a) and all(200 <= m <= 400 for m in a)
    assert moments(random.Random("8:hang:0"), 1000, 3, 0.2, 0.4) != a  # noqa: S311
