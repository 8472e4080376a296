"""The execution agent under live-venue faults (issue 14), on a real Redis: an order whose
outcome stays unknown at a venue that bounds nothing, a client order id reused, a second
process with the same agent id, reconciliation killed again and again, the failsafe
keeping the protective stops, the intent store's durability.

Each test is named after the scenario it guards; each failed before the change."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from agents.execution import ExecutionAgent
from agents.execution_failsafe import cancel_open_orders
from backend import channels
from backend.messages import (
    ExitReason,
    OrderFilled,
    OrderRejected,
    RiskAlertRaised,
    SubmitOrder,
    client_order_id_for,
)
from backend.persistence import Store, make_engine
from backend.runtime import failpoints
from backend.venues import ledger as lg
from backend.venues.factory import TEST_BROKER_ENV
from backend.venues.live import ledger_keys
from orchestrator.symbol_halts import resolve_symbol
from tests.support.agentproc import agent_env, bar, make_settings, running, start_agent, stop
from tests.support.execharness import (
    FAST_VENUE,
    SYM,
    events,
    execution,
    health,
    order,
    settings_for,
    unread,
    xadd,
)
from tests.support.fakebroker import STATE_ENV, FakeBroker
from tests.support.helpers import aeventually, eventually

pytestmark = pytest.mark.integration


def _store(settings) -> Store:  # noqa: ANN001
    return Store(make_engine(settings.db_url()))


def _status(store: Store, coid: str) -> str | None:
    return (store.get_order(coid) or {}).get("status")


# ------------------------------------------------------------------ 1. UNKNOWN at an
#                                                  unbounded venue: halt, ask a person
def test_unknown_order_at_an_unbounded_venue_halts_the_symbol_and_is_never_resent(
        redis_url: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker(request_lifetime_s=None, late_s=1.5)  # MT5/IB-like
    o = order("sig-unresolved")
    coid = o.client_order_id

    async def go() -> None:
        async with execution(settings, broker):
            await aeventually(lambda: health(r).get("state") == "running", 20)
            broker.fail_next("place_market_order", "late")
            xadd(r, channels.ORDERS, o)
            await aeventually(lambda: r.hget(channels.SYMBOL_HALTS_KEY, SYM), 20,
                              message="symbol halted")
            assert _status(store, coid) == "UNKNOWN"
            assert unread(r, channels.ORDERS) == 0  # acknowledged: nothing blocks others
            halt = orjson.loads(r.hget(channels.SYMBOL_HALTS_KEY, SYM))
            assert halt["kind"] == "order_unknown" and halt["client_order_id"] == coid
            assert store.get_state(f"halt:symbol:{SYM}")["client_order_id"] == coid
            (alert,) = [e for e in events(r, channels.RISK_ALERTS)
                        if isinstance(e, RiskAlertRaised)]
            assert (alert.metric, alert.level, alert.symbol) == ("order_unknown", "breach", SYM)
            assert "not resent" in alert.reason
            o2 = order("sig-unresolved-2")  # a new entry for the halted symbol
            xadd(r, channels.ORDERS, o2)
            await aeventually(lambda: _status(store, o2.client_order_id) == "REJECTED", 20)
            # the late request lands: the periodic re-check finds and adopts it
            await aeventually(lambda: _status(store, coid) == "FILLED", 20,
                              message="adopted when it showed up")
            assert store.audit(action="order_unknown_resolved")
            assert r.hget(channels.SYMBOL_HALTS_KEY, SYM)  # a person still decides
            ar = AsyncRedis.from_url(redis_url)
            try:
                res = await resolve_symbol(ar, store, symbol=SYM, reason="saw it filled",
                                           actor="test", wait_s=20)
            finally:
                await ar.aclose()
            assert res.confirmed and res.resumed, res.message
        assert len(broker.orders(coid)) == 1 and broker.calls("place_market_order") == 1
        assert broker.orders(o2.client_order_id) == []
        assert r.hget(channels.SYMBOL_HALTS_KEY, SYM) is None
        assert store.positions()[0]["quantity"] == 2.0

    asyncio.run(go())


def test_an_unknown_order_confirmed_absent_by_a_person_is_rejected(
        redis_url: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker(request_lifetime_s=None)
    o = order("sig-lost-for-good")

    async def go() -> None:
        async with execution(settings, broker):
            await aeventually(lambda: health(r).get("state") == "running", 20)
            broker.fail_next("place_market_order", "timeout_before")  # never landed
            xadd(r, channels.ORDERS, o)
            await aeventually(lambda: r.hget(channels.SYMBOL_HALTS_KEY, SYM), 20)
            ar = AsyncRedis.from_url(redis_url)
            try:
                still = await resolve_symbol(ar, store, symbol=SYM, reason="looking",
                                             actor="test", wait_s=20)
                assert still.confirmed and not still.resumed
                assert o.client_order_id in still.message
                res = await resolve_symbol(ar, store, symbol=SYM, reason="not in the terminal",
                                           actor="test", not_placed=[o.client_order_id],
                                           wait_s=20)
            finally:
                await ar.aclose()
            assert res.confirmed and res.resumed, res.message
        assert _status(store, o.client_order_id) == "REJECTED"
        assert broker.orders(o.client_order_id) == []
        rejected = [e for e in events(r) if isinstance(e, OrderRejected)]
        assert "confirmed by test" in rejected[-1].reason

    asyncio.run(go())


# ------------------------------------------------------------------ 7. id collision
def test_a_reused_client_order_id_is_refused_loudly(redis_url: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker()
    first = order("sig-a")
    clash = SubmitOrder(source="risk", correlation_id="sig-b",
                        client_order_id=first.client_order_id, symbol=SYM, side=first.side,
                        quantity=5.0, signal_id="sig-b", bar_seq=7)

    async def go() -> None:
        async with execution(settings, broker):
            xadd(r, channels.ORDERS, first)
            await aeventually(lambda: _status(store, first.client_order_id) == "FILLED", 20)
            xadd(r, channels.ORDERS, clash)
            await aeventually(lambda: unread(r, channels.ORDERS) == 0, 20)
        (ev,) = [e for e in events(r) if isinstance(e, OrderRejected)]
        assert "already belongs to signal sig-a" in ev.reason
        row = store.get_order(first.client_order_id)
        assert row["status"] == "FILLED" and row["signal_id"] == "sig-a"  # untouched
        assert len(broker.orders(first.client_order_id)) == 1
        (alarm,) = store.audit(action="venue_alarm")
        assert alarm["decision"] == "id_collision"

    asyncio.run(go())


# ------------------------------------------------------------------ 8. one live process
def test_a_second_execution_process_stands_by_until_the_first_stops(
        redis_url: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker()

    async def go() -> None:
        first = ExecutionAgent(settings, client=broker)
        t1 = asyncio.create_task(first.run())
        await aeventually(lambda: health(r).get("state") == "running", 20)
        pid_key = r.get(channels.lease_key("execution"))
        second = ExecutionAgent(settings, client=broker)
        t2 = asyncio.create_task(second.run())
        o = order("sig-lease")
        xadd(r, channels.ORDERS, o)
        await aeventually(lambda: _status(store, o.client_order_id) == "FILLED", 20)
        assert second.lease is not None and second.lease.fence == 0  # standing by
        assert second.messages_in == 0 and first.messages_in >= 1
        assert r.get(channels.lease_key("execution")) == pid_key
        first.request_stop()
        assert await asyncio.wait_for(t1, 30) == 0
        await aeventually(lambda: second.lease.fence > 0, 20, message="second took over")
        o2 = order("sig-lease-2")
        xadd(r, channels.ORDERS, o2)
        await aeventually(lambda: _status(store, o2.client_order_id) == "FILLED", 20)
        assert second.messages_in >= 1
        second.request_stop()
        assert await asyncio.wait_for(t2, 30) == 0
        assert len(broker.orders()) == 2

    asyncio.run(go())


def test_the_intent_store_of_execution_is_durable(redis_url: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, redis_url)

    async def go() -> None:
        async with execution(settings, FakeBroker()) as agent:
            await aeventually(lambda: hasattr(agent, "store"), 20)
            with agent.store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL

    asyncio.run(go())


# ------------------------------------------------------------------ 5. reconcile crashes
@pytest.mark.parametrize("point", ["reconcile_adopted", "reconcile_fills",
                                   "reconcile_statuses", "reconcile_before_commit"])
def test_interrupted_reconciliation_restores_the_brackets(
        redis_url: str, tmp_path: Path, point: str) -> None:
    """The order fills while execution is down; reconciliation is killed twice at
    ``point`` (after its database writes, before its Redis transaction for the last one);
    the third run ends in the same books as an uninterrupted one: the fill once, the
    position at its fill price with the order's stop and target, which then exits."""
    settings = make_settings(tmp_path, redis_url, venue=FAST_VENUE)
    r = redis.Redis.from_url(redis_url)
    broker = FakeBroker(tmp_path / "broker.json", fill_mode="rest")
    env = agent_env(settings, tmp_path)
    env[TEST_BROKER_ENV], env[STATE_ENV] = "tests.support.fakebroker:from_env", str(broker.path)
    o = order("sig-rc", stop_loss=0.095, take_profit=0.12)
    coid = o.client_order_id
    store = Store(make_engine(settings.db_url()))
    proc = start_agent("execution", env, tmp_path)
    try:
        eventually(lambda: running(r, "execution"), 30, message="execution running")
        xadd(r, channels.ORDERS, o)
        eventually(lambda: _status(store, coid) == "ACCEPTED", 30)
        assert stop(proc) == 0
        broker.fill(coid, price=0.1)  # while nobody listens
        failpoints.arm(tmp_path, "execution", point, times=2)
        for _ in range(2):
            crashed = start_agent("execution", env, tmp_path)
            assert crashed.wait(60) == failpoints.ARMED_EXIT_CODE
        proc = start_agent("execution", env, tmp_path)
        eventually(lambda: running(r, "execution"), 30, message="reconciled at last")
        assert _status(store, coid) == "FILLED"
        assert [f["client_order_id"] for f in store.fills()] == [coid]
        fills = [e for e in events(r) if isinstance(e, OrderFilled)]
        assert [f.client_order_id for f in fills] == [coid]
        blob = orjson.loads(r.get(ledger_keys("fake")[0]))
        pos = blob["positions"][SYM]
        assert (pos["quantity"], pos["avg_price"]) == (2.0, 0.1)
        assert (pos["stop_loss"], pos["take_profit"]) == (0.095, 0.12)
        (row,) = store.positions()
        assert (row["quantity"], row["avg_price"]) == (2.0, 0.1)
        broker.set_fill_mode("immediate")
        broker.set_price(SYM, 0.094)
        xadd(r, channels.MARKET_DATA, bar(1, 0.094))  # low below the stop: it exits
        exit_coid = lg.exit_coid("fake", coid, ExitReason.STOP_LOSS)
        eventually(lambda: _status(store, exit_coid) == "FILLED", 30, message="stop exit")
        assert broker.positions() == {} and len(broker.orders(coid)) == 1
    finally:
        stop(proc)


# ------------------------------------------------------------------ 6. failsafe
def test_the_failsafe_keeps_the_protective_stops(redis_url: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker(tmp_path / "broker.json", supports_stop_orders=True)
    o = order("sig-fs", stop_loss=0.095, take_profit=0.12)

    async def go() -> None:
        async with execution(settings, broker):
            xadd(r, channels.ORDERS, o)
            await aeventually(lambda: [v for v in broker.orders() if v.stop_price], 20,
                              message="protective stop resting")
        ext = broker.add_external_order(SYM, o.side, 1.0)
        monkeypatch.setenv(TEST_BROKER_ENV, "tests.support.fakebroker:from_env")
        monkeypatch.setenv(STATE_ENV, str(broker.path))
        report = await cancel_open_orders(settings, "execution given up (test)")
        assert report.cancelled == [ext.client_order_id]
        (stop_order,) = [v for v in broker.orders() if v.stop_price]
        assert lg.is_protective(stop_order.client_order_id)
        assert stop_order.status.value == "ACCEPTED"  # still protecting the position
        assert report.open_orders_left == [] and report.positions_left == {SYM: 2.0}
        broker.set_price(SYM, 0.094)  # nobody trades, the venue's stop closes it
        assert broker.positions() == {}

    asyncio.run(go())
    assert store.audit(action="failsafe_cancel")


def test_client_order_ids_differ_once_the_bar_sequence_restarts(tmp_path: Path) -> None:
    """Redis lost its data: the market_data cursor restarts at seq 1, but a new deployment
    epoch from the database keeps every signal and client order id new."""
    from backend.mesh.pipeline import signal_message
    from backend.strategies.base import SignalPoint

    store = Store(make_engine(f"sqlite:///{tmp_path / 'epoch.db'}"))
    e1, e2 = store.next_epoch(), store.next_epoch()
    assert (e1, e2) == (1, 2)
    point = SignalPoint(index=1, time=bar(1).open_time, side=1, confidence=0.9, price=0.1,
                        stop_loss=0.09, take_profit=0.11, reason="x")
    ids = {client_order_id_for(signal_message(point, bar(1).model_copy(
        update={"epoch": e}), "sma_cross", {}).id) for e in (e1, e2)}
    assert len(ids) == 2

