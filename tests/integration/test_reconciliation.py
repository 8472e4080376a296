"""Reconciliation on start, on a real Redis with the execution agent in-process.

Each case on the paper venue where it applies and on the fake broker: missed fill while
down, external order adopted, a position mismatch (an alarm that halts the symbol until a
person resolves it, never an overwrite), every correction audited, and an unreachable
venue: no order consumed, health degraded, then recovery.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import redis
import sqlalchemy as sa
from redis.asyncio import Redis as AsyncRedis

from agents.execution import ExecutionAgent
from backend import channels, persistence
from backend.messages import OrderFilled, OrderStatus, PositionChanged, RiskAlertRaised, Side
from backend.persistence import Store, make_engine
from backend.venues.paper.adapter import ORDERS_HASH
from backend.venues.paper.engine import PaperBook, PaperOrder
from orchestrator.symbol_halts import resolve_symbol
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


def _audits(store: Store, action: str) -> list[dict]:
    return store.audit(action=action)


async def _status(store: Store, coid: str, status: str) -> None:
    await aeventually(lambda: (store.get_order(coid) or {}).get("status") == status, 20,
                      message=f"{coid} {status}")


async def _filled_paper_position(r: redis.Redis, settings, store: Store, sig: str) -> str:  # noqa: ANN001
    """Run paper execution: bar 1, an order, bar 2 (fills it); return the coid."""
    o = order(sig)
    async with execution(settings):
        xadd(r, channels.MARKET_DATA, bar(1))
        xadd(r, channels.ORDERS, o)
        xadd(r, channels.MARKET_DATA, bar(2))
        await _status(store, o.client_order_id, "FILLED")
        await aeventually(lambda: unread(r, channels.MARKET_DATA) == 0, 20)
    return o.client_order_id


# ------------------------------------------------------------------ missed fill
def test_missed_fill_while_down_fake(redis_url: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker(fill_mode="rest")
    o = order("sig-miss")

    async def go() -> None:
        async with execution(settings, broker):
            xadd(r, channels.ORDERS, o)
            await _status(store, o.client_order_id, "ACCEPTED")
        broker.fill(o.client_order_id)  # the venue fills it while the agent is down
        assert store.fills() == []
        async with execution(settings, broker):
            await _status(store, o.client_order_id, "FILLED")
            await aeventually(lambda: health(r).get("state") == "running", 20)
        (f,) = store.fills()
        assert f["client_order_id"] == o.client_order_id and f["quantity"] == 2.0
        assert f["correlation_id"] == "sig-miss"
        assert store.positions()[0]["quantity"] == 2.0
        (a,) = _audits(store, "reconcile_fill")
        assert a["subject_id"] == o.client_order_id
        assert "before=absent after=recorded" in a["reason"]
        (a,) = _audits(store, "reconcile_order")
        assert "before=ACCEPTED after=FILLED" in a["reason"]
        filled = [e for e in events(r) if isinstance(e, OrderFilled)]
        assert len(filled) == 1  # published once, from the reconciliation
        assert [m.action for m in events(r, channels.AUDIT)] == [
            "reconcile_fill", "reconcile_order"]

    asyncio.run(go())


def test_missed_fill_while_down_paper(redis_url: str, tmp_path: Path) -> None:
    """Paper: the database lost a fill the book executed (e.g. restored from a backup)."""
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)

    async def go() -> None:
        coid = await _filled_paper_position(r, settings, store, "sig-pmiss")
        (before,) = store.fills()
        with store.engine.begin() as conn:
            conn.execute(sa.delete(persistence.fills))
        store.update_order_status(coid, OrderStatus.ACCEPTED, force=True)
        async with execution(settings):
            await _status(store, coid, "FILLED")
        (after,) = store.fills()
        assert after == before  # the same fill, from the venue's trade history
        assert _audits(store, "reconcile_fill")[0]["subject_id"] == coid
        assert "before=ACCEPTED after=FILLED" in _audits(store, "reconcile_order")[0]["reason"]

    asyncio.run(go())


# ------------------------------------------------------------------ external order
def test_external_order_is_adopted_and_audited_fake(redis_url: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker()
    ext = broker.add_external_order(SYM, Side.BUY, 1.0)

    async def go() -> None:
        async with execution(settings, broker) as agent:
            (a,) = await aeventually(lambda: _audits(store, "reconcile_external_order"), 20)
            await aeventually(lambda: agent._reconciled, 20)  # the fill comes after it
            row = store.get_order(ext.client_order_id)
            assert row["external"] is True and row["status"] == "ACCEPTED"
            assert row["venue_order_id"] == ext.venue_order_id
            assert a["subject_id"] == ext.client_order_id and "after=external" in a["reason"]
            broker.fill(ext.client_order_id)  # someone's order fills: seen with the next bar
            xadd(r, channels.MARKET_DATA, bar(1))
            await _status(store, ext.client_order_id, "FILLED")
            assert store.positions()[0]["quantity"] == 1.0

    asyncio.run(go())


def test_external_order_is_adopted_and_audited_paper(redis_url: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    manual = PaperOrder(client_order_id="manual-1", symbol=SYM, side=Side.BUY, quantity=1.0)
    book = PaperBook.new(1.0).model_copy(update={"open_orders": {"manual-1": manual}})
    r.set(channels.PAPER_VENUE_KEY,
          orjson.dumps(book.model_dump(mode="json", exclude={"known_orders", "reject_reasons"})))
    r.hset(ORDERS_HASH, "manual-1", "ACCEPTED")

    async def go() -> None:
        async with execution(settings):
            (a,) = await aeventually(lambda: _audits(store, "reconcile_external_order"), 20)
            row = store.get_order("manual-1")
            assert row["external"] is True and row["status"] == "ACCEPTED"
            assert a["subject_id"] == "manual-1"
            xadd(r, channels.MARKET_DATA, bar(1))  # the resting order fills at the open
            await _status(store, "manual-1", "FILLED")

    asyncio.run(go())


# ------------------------------------------------------------------ positions
def test_position_mismatch_halts_the_symbol_until_a_person_resolves_it(
        redis_url: str, tmp_path: Path) -> None:
    """The venue holds 1.5 where the books say 2.0: an alarm, the symbol halted, the books
    not overwritten; new entries refused; a person adopts the venue's position and the
    halt is cleared (audited)."""
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker()
    o = order("sig-pos")

    async def go() -> None:
        async with execution(settings, broker):
            xadd(r, channels.ORDERS, o)
            await aeventually(lambda: store.positions(), 20)
        assert store.positions()[0]["quantity"] == 2.0
        broker.set_position(SYM, 1.5)  # changed behind our back
        async with execution(settings, broker):
            await aeventually(lambda: r.hget(channels.SYMBOL_HALTS_KEY, SYM), 20)
            assert store.positions()[0]["quantity"] == 2.0  # not overwritten
            (alarm,) = _audits(store, "venue_alarm")
            assert alarm["decision"] == "position_mismatch: symbol halted"
            assert "holds 1.5" in alarm["reason"] and "expect 2" in alarm["reason"]
            assert store.get_state(f"halt:symbol:{SYM}")["kind"] == "position_mismatch"
            alerts = [e for e in events(r, channels.RISK_ALERTS)
                      if isinstance(e, RiskAlertRaised)]
            assert [(a.metric, a.level, a.symbol) for a in alerts] == [
                ("position_mismatch", "breach", SYM)]
            o2 = order("sig-pos-2")  # a new entry for the halted symbol: refused
            xadd(r, channels.ORDERS, o2)
            await _status(store, o2.client_order_id, "REJECTED")
            assert broker.orders(o2.client_order_id) == []
            ar = AsyncRedis.from_url(redis_url)
            try:
                res = await resolve_symbol(ar, store, symbol=SYM, reason="checked: 0.5 sold by "
                                           "hand", actor="test", adopt_venue_position=True)
            finally:
                await ar.aclose()
            assert res.confirmed and res.resumed, res.message
        assert store.positions()[0]["quantity"] == 1.5
        assert r.hget(channels.SYMBOL_HALTS_KEY, SYM) is None
        assert store.get_state(f"halt:symbol:{SYM}") is None
        (adopted,) = _audits(store, "position_adopted")
        assert "before=2 after=1.5" in adopted["reason"]
        assert _audits(store, "symbol_resumed")

    asyncio.run(go())


def test_position_mismatch_is_corrected_and_audited_paper(redis_url: str, tmp_path: Path
                                                          ) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)

    async def go() -> None:
        await _filled_paper_position(r, settings, store, "sig-ppos")
        store.upsert_position(PositionChanged(source="t", symbol=SYM, quantity=5.0,
                                              avg_price=0.1, realized_pnl=0.0))
        async with execution(settings):
            await aeventually(lambda: store.positions()[0]["quantity"] == 2.0, 20)
        (a,) = _audits(store, "reconcile_position")
        assert "database" in a["reason"] and "before=5 after=2" in a["reason"]

    asyncio.run(go())


# ------------------------------------------------------------------ unreachable
def test_unreconcilable_venue_consumes_nothing_then_recovers(redis_url: str, tmp_path: Path
                                                             ) -> None:
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker()
    broker.set_unreachable()
    o = order("sig-down")

    async def go() -> None:
        async with execution(settings, broker):
            hb = await aeventually(lambda: health(r).get("state") == "degraded" and health(r),
                                   20, message="degraded while unreconciled")
            assert "unreconciled" in hb["last_error"] and "fake" in hb["last_error"]
            xadd(r, channels.ORDERS, o)
            tries = broker.calls("connect")
            await aeventually(lambda: broker.calls("connect") >= tries + 3, 20,
                              message="reconciliation retried")
            assert unread(r, channels.ORDERS) == 1 and r.xpending(channels.ORDERS, "execution")[
                "pending"] == 0  # not even read
            assert store.get_order(o.client_order_id) is None and broker.orders() == []
            assert health(r)["state"] == "degraded"
            broker.set_unreachable(False)
            await _status(store, o.client_order_id, "FILLED")
            await aeventually(lambda: health(r).get("state") == "running", 20)
            assert health(r)["last_error"] == "" and unread(r, channels.ORDERS) == 0
            assert len(broker.orders(o.client_order_id)) == 1

    asyncio.run(go())


def test_a_definitive_venue_error_at_start_faults_the_agent(redis_url: str, tmp_path: Path
                                                            ) -> None:
    """Only an unreachable venue is retried; a refused login (or a missing SDK) is loud."""
    settings = settings_for(tmp_path, redis_url)
    r = redis.Redis.from_url(redis_url)
    broker = FakeBroker()
    broker.fail_next("connect", "reject")
    code = asyncio.run(asyncio.wait_for(ExecutionAgent(settings, client=broker).run(), 30))
    assert code == 1 and health(r)["state"] == "faulted"
    assert "VenueRejected" in health(r)["last_error"] and broker.orders() == []


# ------------------------------------------------------------------ in flight
def test_in_flight_timeout_across_a_restart_fake(redis_url: str, tmp_path: Path) -> None:
    """The agent stops with an order UNKNOWN (sent, answer lost, venue unreachable since);
    on restart reconciliation adopts it and its redelivery sends nothing."""
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    broker = FakeBroker()
    o = order("sig-inflight")

    async def go() -> None:
        async with execution(settings, broker):
            await aeventually(lambda: health(r).get("state") == "running", 20)
            broker.fail_next("place_market_order", "timeout_after")
            broker.fail_next("fetch_order", "unreachable", times=10_000)
            xadd(r, channels.ORDERS, o)
            await _status(store, o.client_order_id, "UNKNOWN")
        assert unread(r, channels.ORDERS) == 1 and len(broker.orders(o.client_order_id)) == 1
        broker.clear_faults()
        async with execution(settings, broker):
            await _status(store, o.client_order_id, "FILLED")
            await aeventually(lambda: unread(r, channels.ORDERS) == 0, 20)
        assert len(broker.orders(o.client_order_id)) == 1
        assert broker.calls("place_market_order") == 1 and len(store.fills()) == 1
        (a,) = _audits(store, "reconcile_order")
        assert "before=UNKNOWN after=FILLED" in a["reason"]

    asyncio.run(go())


def test_in_flight_order_never_reached_the_paper_venue(redis_url: str, tmp_path: Path) -> None:
    """Paper: stored UNKNOWN, not in the book -> back to NEW (audited), then sent once."""
    settings = settings_for(tmp_path, redis_url)
    r, store = redis.Redis.from_url(redis_url), _store(settings)
    o = order("sig-pinflight")
    store.record_order_intent(o)
    store.update_order_status(o.client_order_id, OrderStatus.UNKNOWN, reason="timeout")
    xadd(r, channels.MARKET_DATA, bar(1))
    xadd(r, channels.ORDERS, o)  # still pending: it was never acknowledged

    async def go() -> None:
        async with execution(settings):
            await _status(store, o.client_order_id, "ACCEPTED")
            xadd(r, channels.MARKET_DATA, bar(2))
            await _status(store, o.client_order_id, "FILLED")
        (a,) = _audits(store, "reconcile_order")
        assert "before=UNKNOWN after=NEW" in a["reason"]
        assert r.hlen(ORDERS_HASH) == 1 and len(store.fills()) == 1

    asyncio.run(go())
