"""The halt latch on a real redis-server with real agent processes.

* risk: the daily-drawdown breaker latches HALTED (Redis and database), approved signals
  are rejected while it holds, and after an operator's reset risk adopts it (re-based on
  the current equity, so it does not trip again on the next mark) and orders flow again;
* execution: the kill switch cancels the resting order, closes the position with a
  market order, confirms, and denies every later order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from backend import channels
from backend.mesh.halt import HALT_STATE, read_halt
from backend.messages import (
    CancelAllOrders,
    ComplianceDecided,
    PortfolioMarked,
    Side,
    SignalGenerated,
    SubmitOrder,
    client_order_id_for,
    decode,
)
from backend.persistence import Store, make_engine
from orchestrator.killswitch import emergency_stop, reset_halt
from tests.support.agentproc import (
    FIVE_MIN,
    T0,
    agent_env,
    bar,
    make_settings,
    running,
    start_agent,
    stop,
)
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration


def _xadd(r: redis.Redis, channel: str, msg) -> None:  # noqa: ANN001
    r.xadd(channel, {b"data": msg.to_json()})


def _events(r: redis.Redis, stream: str) -> list:
    return [decode(e[1][b"data"]) for e in r.xrange(stream)]


def _mark(seq: int, equity: float) -> PortfolioMarked:
    return PortfolioMarked(source="execution", bar_seq=seq, bar_time=T0 + seq * FIVE_MIN,
                           cash=equity, equity=equity, exposure=0.0, day=T0 // 86_400_000_000_000,
                           day_start_equity=1.0)


def _approval(seq: int) -> ComplianceDecided:
    sig = SignalGenerated(
        id=f"sig-{seq}", correlation_id=f"sig-{seq}", source="strategy:ETHBTC",
        symbol="ETH/BTC", side=Side.BUY, confidence=0.95, entry_price=0.1, stop_loss=0.098,
        take_profit=0.104, reason="test", strategy="sma_cross", bar_seq=seq,
        bar_time=T0 + seq * FIVE_MIN,
    )
    return ComplianceDecided(id=f"comp-{seq}", source="compliance", correlation_id=sig.id,
                             approved=True, rule="ok", reason="ok", signal=sig)


def test_breaker_latches_and_risk_adopts_the_reset(redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redis_url)
    r = redis.Redis.from_url(redis_url)
    store = Store(make_engine(settings.db_url()))
    proc = start_agent("risk", agent_env(settings, tmp_path), tmp_path)
    try:
        eventually(lambda: running(r, "risk"), 20, message="risk running")
        _xadd(r, channels.TRADING_EVENTS, _mark(1, 1.0))
        _xadd(r, channels.TRADING_EVENTS, _mark(2, 0.97))  # 3% down on the day: trips
        halt = eventually(lambda: r.get(channels.HALT_KEY), 20, message="breaker latched")
        assert orjson.loads(halt)["kind"] == "circuit_breaker"
        assert store.get_state(HALT_STATE)["kind"] == "circuit_breaker"  # durable mirror

        _xadd(r, channels.SIGNALS_APPROVED, _approval(2))
        rejected = eventually(lambda: _events(r, channels.SIGNALS_REJECTED), 20)
        assert rejected[0].rule == "halted"
        # the trip cancels resting entries, durably (issue 15); no order is sent
        cmds = _events(r, channels.ORDERS)
        assert [(type(c), c.entries_only, c.flatten) for c in cmds] == \
            [(CancelAllOrders, True, False)]

        async def reset() -> None:
            ar = AsyncRedis.from_url(redis_url)
            try:
                res = await reset_halt(ar, store, reason="drawdown reviewed", actor="test")
                assert res.was_halted and not res.halted
                assert await read_halt(ar) is None
            finally:
                await ar.aclose()

        asyncio.run(reset())
        assert store.get_state(HALT_STATE) is None
        assert [a["action"] for a in store.audit()][-1] == "halt_reset"
        # Same day, equity unchanged: the re-based breaker must not trip again.
        _xadd(r, channels.TRADING_EVENTS, _mark(3, 0.97))
        _xadd(r, channels.SIGNALS_APPROVED, _approval(3))
        orders = eventually(lambda: [o for o in _events(r, channels.ORDERS)
                                     if isinstance(o, SubmitOrder)], 20,
                            message="an order after the reset")
        assert isinstance(orders[0], SubmitOrder) and orders[0].signal_id == "sig-3"
        assert r.get(channels.HALT_KEY) is None
    finally:
        stop(proc)


def _order(sig: str, qty: float) -> SubmitOrder:
    return SubmitOrder(source="risk", correlation_id=sig, client_order_id=client_order_id_for(sig),
                       symbol="ETH/BTC", side=Side.BUY, quantity=qty, signal_id=sig, bar_seq=1)


def test_kill_switch_cancels_flattens_and_denies(redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redis_url)
    r = redis.Redis.from_url(redis_url)
    store = Store(make_engine(settings.db_url()))
    proc = start_agent("execution", agent_env(settings, tmp_path), tmp_path)
    try:
        eventually(lambda: running(r, "execution"), 20, message="execution running")
        _xadd(r, channels.MARKET_DATA, bar(1, 0.1))
        _xadd(r, channels.ORDERS, _order("sig-a", 2.0))
        _xadd(r, channels.MARKET_DATA, bar(2, 0.1))  # fills sig-a at the open
        eventually(lambda: len(store.fills()) == 1, 20, message="first order filled")
        _xadd(r, channels.ORDERS, _order("sig-b", 1.0))  # rests until the next bar
        coid_b = client_order_id_for("sig-b")
        eventually(lambda: (store.get_order(coid_b) or {}).get("status") == "ACCEPTED", 20)

        async def kill() -> object:
            ar = AsyncRedis.from_url(redis_url)
            try:
                return await emergency_stop(ar, store, reason="test", actor="test", wait_s=20)
            finally:
                await ar.aclose()

        res = asyncio.run(kill())
        assert res.confirmed, res.message
        assert res.cancelled_orders == [coid_b]
        assert [(p.symbol, p.quantity) for p in res.flattened] == [("ETH/BTC", 2.0)]
        assert res.positions_left == {} and res.open_orders_left == []
        book = orjson.loads(r.get(channels.PAPER_VENUE_KEY))
        assert book["positions"].get("ETH/BTC", {"quantity": 0.0})["quantity"] == 0.0
        assert store.get_order(coid_b)["status"] == "CANCELLED"
        assert orjson.loads(r.get(channels.PORTFOLIO_KEY))["positions"] == {}

        _xadd(r, channels.ORDERS, _order("sig-c", 1.0))  # after the stop: denied
        coid_c = client_order_id_for("sig-c")
        row = eventually(lambda: store.get_order(coid_c), 20)
        eventually(lambda: store.get_order(coid_c)["status"] == "REJECTED", 20)
        assert row["symbol"] == "ETH/BTC"
        _xadd(r, channels.MARKET_DATA, bar(3, 0.1))
        eventually(lambda: r.hget("venue:paper:orders", coid_c) is None and
                   store.get_order(coid_c)["status"] == "REJECTED", 20)
        assert len([f for f in store.fills() if f["exit_reason"] != "flatten"]) == 1
    finally:
        stop(proc)


def test_cli_emergency_stop_and_reset(redis_url: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, REDIS_URL=redis_url, TRADINGMESH_VAR_DIR=str(tmp_path))
    env.pop("TRADINGMESH_SETTINGS_FILE", None)
    env.pop("DATABASE_URL", None)
    r = redis.Redis.from_url(redis_url)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    # No execution agent is running: latched and queued, but not confirmed (exit 3).
    res = cli("stop", "--emergency", "--reason", "desk call", "--wait", "0.2")
    assert res.returncode == 3, res.stdout + res.stderr
    assert "queued" in res.stdout
    assert orjson.loads(r.get(channels.HALT_KEY))["by"] == "cli"
    (cmd,) = _events(r, channels.ORDERS)
    assert cmd.type == "cancel_all_orders" and cmd.flatten
    store = Store(make_engine(f"sqlite:///{tmp_path / 'tradingmesh.db'}"))
    assert store.get_state(HALT_STATE)["reason"] == "desk call"

    assert cli("reset", "--reason", "x").returncode == 2  # a reason must say why
    res = cli("reset", "--reason", "all clear after review")
    assert res.returncode == 0, res.stdout + res.stderr
    assert r.get(channels.HALT_KEY) is None and store.get_state(HALT_STATE) is None
    assert [a["action"] for a in store.audit()] == ["emergency_stop", "halt_reset"]
