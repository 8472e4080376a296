"""A paused pub/sub subscriber is dropped by Redis and recovers; the order path goes on.

Real redis-server, ``tradingmesh tail`` as a subprocess (the slow consumer), filler on
``agent:broadcast`` from the drill, and the real compliance agent reading ``signals``
through its consumer group while valid signals keep coming.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import redis

from backend import channels
from backend.bus import Bus
from backend.messages import PortfolioMarked, Side, SignalGenerated
from backend.redisctl.server import RedisServer
from orchestrator.drills.slow_consumer import CONFIG_KEY, read_status, slow_consumer_drill
from tests.support.agentproc import T0, agent_env, make_settings, running, start_agent, stop
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration

SIGNALS = 40


def _signal(i: int) -> SignalGenerated:
    return SignalGenerated(
        source="strategy:ETHBTC", symbol="ETH/BTC", side=Side.BUY if i % 2 else Side.SELL,
        confidence=0.9, entry_price=0.1, stop_loss=0.095 if i % 2 else 0.105,
        take_profit=0.11 if i % 2 else 0.09, reason=f"order path during drill {i}",
        strategy="sma_cross", bar_seq=5, bar_time=T0)


async def _order_path_traffic(url: str, stop_after: asyncio.Event) -> int:
    """Publish valid signals (XADD + PUBLISH) until the drill is over; how many."""
    r = redis.asyncio.Redis.from_url(url)
    bus, n = Bus(r, "strategy:ETHBTC"), 0
    try:
        while not stop_after.is_set() or n < SIGNALS:
            await bus.publish(channels.SIGNALS, _signal(n))
            n += 1
            await asyncio.sleep(0.05)  # a steady trickle, not a timing assumption
        return n
    finally:
        await r.aclose()


async def _run(url: str, work: Path) -> tuple[object, int]:
    admin = redis.asyncio.Redis.from_url(url)
    done = asyncio.Event()
    traffic = asyncio.create_task(_order_path_traffic(url, done))
    try:
        env = {**os.environ, "REDIS_URL": url}
        res = await slow_consumer_drill(admin, env, work, timeout_s=90)
    finally:
        done.set()
        sent = await traffic
        await admin.aclose()
    return res, sent


def test_slow_subscriber_is_dropped_and_recovers_while_order_path_goes_on(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, redis_url, symbols=["ETH/BTC"])
    r = redis.Redis.from_url(redis_url)
    before = r.config_get(CONFIG_KEY)[CONFIG_KEY]
    proc = start_agent("compliance", agent_env(settings, tmp_path), tmp_path)
    try:
        eventually(lambda: running(r, "compliance"), 60, message="compliance running")
        mark = PortfolioMarked(source="execution", bar_seq=5, bar_time=T0, cash=1, equity=1,
                               exposure=0, day=T0 // 86_400_000_000_000, day_start_equity=1)
        r.xadd(channels.TRADING_EVENTS, {b"data": mark.to_json()})
        res, sent = asyncio.run(_run(redis_url, tmp_path / "drill"))

        assert res.error == "", res
        assert res.dropped and res.drop_detected_s is not None
        assert any(e.startswith("CLIENT LIST no longer shows") for e in res.drop_evidence)
        assert any(e.startswith("redis log:") for e in res.drop_evidence), res.drop_evidence
        log = redis_server.log_path.read_text(errors="replace")
        assert "for overcoming of output buffer limits" in log
        assert res.recovered and res.reconnects >= 1 and res.received_after_recovery > 0
        status = read_status(tmp_path / "drill" / "tail.status.json")
        assert status["drops"] >= 1 and status["reconnects"] >= 1
        assert status["channels"][channels.AGENT_BROADCAST] > 0
        tail_log = (tmp_path / "drill" / "tail.log").read_text()
        assert "dropped by redis" in tail_log and "resubscribed (reconnect 1)" in tail_log
        assert res.tail_exit == 0
        assert res.filler_messages > 0
        assert res.limit_restored and r.config_get(CONFIG_KEY)[CONFIG_KEY] == before
        assert res.order_path_caught_up is True

        # The order path: every signal published during the drill was decided and acked.
        decided = lambda: r.xlen(channels.SIGNALS_APPROVED) + r.xlen(  # noqa: E731
            channels.SIGNALS_REJECTED)
        eventually(lambda: decided() == sent, 60, message=f"{sent} signals decided")
        (group,) = r.xinfo_groups(channels.SIGNALS)
        assert int(group["pending"]) == 0 and int(group["lag"] or 0) == 0
        assert r.xlen(channels.DEAD_LETTER) == 0
        assert proc.poll() is None
    finally:
        assert stop(proc) == 0
