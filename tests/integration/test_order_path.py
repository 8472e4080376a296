"""Order path on a real redis-server: delivery, crash before ack, dead letters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import redis

from backend import channels
from backend.bus import Bus
from backend.messages import (
    PortfolioMarked,
    ReplayFinished,
    Side,
    SignalGenerated,
    SubmitOrder,
    client_order_id_for,
    decode,
)
from backend.persistence import Store, make_engine
from tests.support.agentproc import T0, agent_env, bar, make_settings, running, start_agent, stop
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration


def _pending(r: redis.Redis, stream: str, group: str) -> int:
    for g in r.xinfo_groups(stream):
        if g["name"].decode() == group:
            return int(g["pending"]) + int(g["lag"] or 0)
    return -1


@pytest.mark.parametrize("stream", channels.ORDER_PATH_STREAMS)
def test_message_on_each_order_path_channel_is_delivered(redis_url: str, stream: str) -> None:
    async def go() -> None:
        r = redis.asyncio.Redis.from_url(redis_url)
        bus = Bus(r, "t")
        await bus.ensure_group(stream, "reader")
        ps = r.pubsub()
        await ps.subscribe(stream)
        await ps.get_message(timeout=1)
        msg = ReplayFinished(source="t", bars=3, last_seq=3)
        await bus.publish(stream, msg)
        live = await ps.get_message(timeout=2)
        assert live is not None and decode(live["data"]) == msg  # pub/sub (redis-cli SUBSCRIBE)
        (d,) = await Bus(r, "consumer").read([stream], "reader", block_ms=1000)
        assert decode(d.raw) == msg  # durable stream via consumer group
        assert (await r.xrange(stream))[0][1][b"data"] == msg.to_json()  # XRANGE history
        await ps.aclose()
        await r.aclose()

    asyncio.run(go())


def test_execution_killed_before_ack_places_order_exactly_once(
    redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, redis_url)
    r = redis.Redis.from_url(redis_url)
    env = agent_env(settings, tmp_path, failpoints="execution:before_ack@orders")
    proc = start_agent("execution", env, tmp_path)
    try:
        eventually(lambda: running(r, "execution"), 20, message="execution running")
        order = SubmitOrder(
            source="risk", correlation_id="sig-1", client_order_id=client_order_id_for("sig-1"),
            symbol="ETH/BTC", side=Side.BUY, quantity=2.0, signal_id="sig-1", bar_seq=1,
        )

        def publish(channel: str, msg) -> None:  # noqa: ANN001
            r.xadd(channel, {b"data": msg.to_json()})

        publish(channels.MARKET_DATA, bar(1))
        publish(channels.ORDERS, order)
        # The agent read the order, wrote its intent, then died before its XACK.
        assert proc.wait(20) != 0
        assert (tmp_path / "execution.before_ack.fired").exists()
        assert _pending(r, channels.ORDERS, "execution") == 1
        store = Store(make_engine(settings.db_url()))
        assert store.get_order(order.client_order_id) is not None  # intent persisted first
        assert r.hget("venue:paper:orders", order.client_order_id) is None  # venue: not yet

        proc = start_agent("execution", env, tmp_path)  # restart: failpoint already fired
        eventually(lambda: _pending(r, channels.ORDERS, "execution") == 0, 20,
                   message="order redelivered and acked after restart")
        publish(channels.ORDERS, order)  # a duplicate delivery, too
        publish(channels.MARKET_DATA, bar(2, 0.11))
        eventually(lambda: len(store.fills()) >= 1, 20, message="order filled on next bar")
        eventually(lambda: _pending(r, channels.MARKET_DATA, "execution") == 0, 20)
        fills = store.fills()
        assert len(fills) == 1 and fills[0]["client_order_id"] == order.client_order_id
        assert fills[0]["quantity"] == pytest.approx(2.0)
        assert store.get_order(order.client_order_id)["status"] == "FILLED"
        accepted = [
            decode(e[1][b"data"]) for e in r.xrange(channels.TRADING_EVENTS)
        ]
        assert sum(1 for m in accepted if m.type == "order_filled") == 1
        book = orjson.loads(r.get(channels.PAPER_VENUE_KEY))
        assert book["positions"]["ETH/BTC"]["quantity"] == pytest.approx(2.0)
    finally:
        stop(proc)


def test_malformed_payload_is_dead_lettered_and_agent_keeps_going(
    redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, redis_url)
    r = redis.Redis.from_url(redis_url)
    proc = start_agent("compliance", agent_env(settings, tmp_path), tmp_path)
    try:
        eventually(lambda: running(r, "compliance"), 20, message="compliance running")
        r.xadd(channels.SIGNALS, {b"data": b'{"type": "signal_generated", "confidence": 7}'})
        r.xadd(channels.SIGNALS, {b"data": b"garbage \x00\xff"})
        r.xadd(channels.SIGNALS, {b"other": b"no data field"})
        mark = PortfolioMarked(source="execution", bar_seq=5, bar_time=T0, cash=1, equity=1,
                               exposure=0, day=T0 // 86_400_000_000_000, day_start_equity=1)
        r.xadd(channels.TRADING_EVENTS, {b"data": mark.to_json()})
        sig = SignalGenerated(
            source="strategy:ETHBTC", symbol="ETH/BTC", side=Side.BUY, confidence=0.9,
            entry_price=0.1, stop_loss=0.095, take_profit=0.11, reason="test",
            strategy="sma_cross", bar_seq=5, bar_time=T0,
        )
        r.xadd(channels.SIGNALS, {b"data": sig.to_json()})
        eventually(lambda: r.xlen(channels.DEAD_LETTER) == 3, 20, message="3 dead letters")
        reasons = [orjson.loads(e[1][b"data"])["reason"] for e in r.xrange(channels.DEAD_LETTER)]
        assert "invalid message" in reasons[0] and "invalid JSON" in reasons[1]
        eventually(lambda: r.xlen(channels.SIGNALS_APPROVED) == 1, 20,
                   message="the valid signal after the bad ones is still handled")
        assert proc.poll() is None  # still alive
        assert _pending(r, channels.SIGNALS, "compliance") == 0
    finally:
        assert stop(proc) == 0
