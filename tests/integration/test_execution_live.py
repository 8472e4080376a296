"""The execution agent on a live venue (fake broker), in-process on a real Redis: the
UNKNOWN protocol (in-flight timeouts resolved with exactly one order, an unresolvable
order kept unacknowledged), fills by periodic poll, bracket exits, the kill switch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from backend import channels
from backend.messages import ExitReason, OrderFilled, OrderRejected, Side
from backend.persistence import Store, make_engine
from backend.venues import ledger
from orchestrator.killswitch import emergency_stop
from tests.support.agentproc import bar
from tests.support.execharness import (
    SYM,
    events,
    execution,
    health,
    order,
    settings_for,
    unread,
    xadd,
)
from tests.support.fakebroker import FakeBroker
from tests.support.helpers import aeventually

pytestmark = pytest.mark.integration


def _store(settings) -> Store:  # noqa: ANN001
    return Store(make_engine(settings.db_url()))


async def _status(store: Store, coid: str, status: str) -> dict:
    return await aeventually(
        lambda: (row := store.get_order(coid)) is not None and row["status"] == status and row,
        20, message=f"{coid} {status}")


@pytest.mark.parametrize("fault", ["timeout_after", "timeout_before", "hang", "hang_after"])
def test_in_flight_timeout_is_resolved_with_exactly_one_order(
    redis_url: str, tmp_path: Path, fault: str,
) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker()
    broker.fail_next("place_market_order", fault)
    o = order(f"sig-{fault}")

    async def go() -> None:
        async with execution(settings, broker):
            xadd(r, channels.ORDERS, o)
            row = await _status(store, o.client_order_id, "FILLED")
            await aeventually(lambda: unread(r, channels.ORDERS) == 0, 20)
            await aeventually(lambda: len(store.fills()) == 1, 20)
            xadd(r, channels.ORDERS, o)  # a duplicate delivery as well
            await aeventually(lambda: unread(r, channels.ORDERS) == 0, 20)
        assert "submit outcome unknown" in row["reason"]  # it went through UNKNOWN
        assert len(broker.orders(o.client_order_id)) == 1
        sent = broker.calls("place_market_order")
        assert sent == (1 if fault in ("timeout_after", "hang_after") else 2)
        assert len(store.fills()) == 1 and store.positions()[0]["quantity"] == 2.0

    asyncio.run(go())


def test_unresolvable_order_stays_unknown_and_unacknowledged(redis_url: str, tmp_path: Path
                                                             ) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker()
    o = order("sig-lost")

    async def go() -> None:
        async with execution(settings, broker):
            await aeventually(lambda: health(r).get("state") == "running", 20)
            broker.fail_next("place_market_order", "timeout_after")
            broker.fail_next("fetch_order", "unreachable", times=10_000)
            xadd(r, channels.ORDERS, o)
            await _status(store, o.client_order_id, "UNKNOWN")
            hb = await aeventually(lambda: health(r).get("state") == "degraded" and health(r),
                                   20)
            assert "UNKNOWN" in hb["last_error"] and o.client_order_id in hb["last_error"]
            lookups = broker.calls("fetch_order")
            await aeventually(lambda: broker.calls("fetch_order") >= lookups + 4, 20,
                              message="retried")
            assert unread(r, channels.ORDERS) == 1  # not acknowledged: handled again later
            assert store.get_order(o.client_order_id)["status"] == "UNKNOWN"
            broker.clear_faults()
            await _status(store, o.client_order_id, "FILLED")
            await aeventually(lambda: unread(r, channels.ORDERS) == 0, 20)
            await aeventually(lambda: health(r).get("state") == "running", 20)
        assert len(broker.orders(o.client_order_id)) == 1
        assert broker.calls("place_market_order") == 1

    asyncio.run(go())


def test_fills_arrive_by_periodic_poll_and_brackets_exit_once(redis_url: str, tmp_path: Path
                                                              ) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker(fill_mode="rest")
    o = order("sig-br", stop_loss=0.095, take_profit=0.12)

    async def go() -> None:
        async with execution(settings, broker):
            xadd(r, channels.ORDERS, o)
            await _status(store, o.client_order_id, "ACCEPTED")
            broker.fill(o.client_order_id, 0.5)  # no bar: only the periodic poll sees it
            await _status(store, o.client_order_id, "PARTIALLY_FILLED")
            broker.fill(o.client_order_id)
            await _status(store, o.client_order_id, "FILLED")
            broker.set_fill_mode("immediate")
            broker.set_price(SYM, 0.094)
            xadd(r, channels.MARKET_DATA, bar(1, 0.1))
            xadd(r, channels.MARKET_DATA, bar(2, 0.094))  # low 0.0939: the stop is hit
            exit_coid = ledger.exit_coid("fake", o.client_order_id, ExitReason.STOP_LOSS)
            await _status(store, exit_coid, "FILLED")
            xadd(r, channels.MARKET_DATA, bar(3, 0.094))
            await aeventually(lambda: unread(r, channels.MARKET_DATA) == 0, 20)
        fills = [e for e in events(r) if isinstance(e, OrderFilled)]
        assert [f.exit_reason for f in fills] == [
            ExitReason.ENTRY, ExitReason.ENTRY, ExitReason.STOP_LOSS]
        assert fills[-1].correlation_id == "sig-br" and fills[-1].quantity == 2.0
        assert len(broker.orders(exit_coid)) == 1 and broker.positions() == {}
        assert store.positions()[0]["quantity"] == 0.0
        assert store.get_order(exit_coid)["reduce_only"] is True

    asyncio.run(go())


def test_kill_switch_cancels_and_flattens_through_the_client(redis_url: str, tmp_path: Path
                                                              ) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker(prices={SYM: 0.1, "LTC/BTC": 0.01})
    o = order("sig-kill")

    async def go() -> None:
        async with execution(settings, broker):
            xadd(r, channels.ORDERS, o)
            await _status(store, o.client_order_id, "FILLED")
            ext = broker.add_external_order(SYM, Side.SELL, 1.0)
            ar = AsyncRedis.from_url(redis_url)
            try:
                res = await emergency_stop(ar, store, reason="test", actor="test", wait_s=20)
            finally:
                await ar.aclose()
            assert res.confirmed, res.message
            assert res.cancelled_orders == [ext.client_order_id]
            close = ledger.flatten_coid(res.command_id, SYM)
            assert [(p.symbol, p.quantity, p.client_order_id) for p in res.flattened] == [
                (SYM, 2.0, close)]
            assert res.positions_left == {} and res.open_orders_left == []
            assert broker.positions() == {} and len(broker.orders(close)) == 1
            assert store.get_order(close)["status"] == "FILLED"
            assert store.get_order(ext.client_order_id)["status"] == "CANCELLED"
            o2 = order("sig-after")
            xadd(r, channels.ORDERS, o2)
            await _status(store, o2.client_order_id, "REJECTED")
        assert broker.orders(o2.client_order_id) == []
        rejected = [e for e in events(r) if isinstance(e, OrderRejected)]
        assert rejected[-1].reason.startswith("trading halted")

    asyncio.run(go())
