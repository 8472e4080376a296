"""The risk agent's portfolio-VaR alerts and VaR limit, in process on fakeredis.

Bars go on ``market_data`` (the agent reads its closes there), portfolio marks with a
chosen ETH/BTC position on ``trading_events``; the position is sized so that the
portfolio VaR is a chosen fraction of the limit at that bar.  Crossing the alert ratio
emits one ``RiskAlertRaised`` (warning), staying above emits nothing more (also after a
restart), reaching the limit emits a breach, and going flat is audited as cleared.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from agents.risk import RiskAgent
from backend import channels
from backend.bus import DATA_FIELD, Bus
from backend.marketdata.history import CloseHistory
from backend.messages import (
    ComplianceDecided,
    PortfolioMarked,
    PositionSnapshot,
    RiskAlertRaised,
    RiskDecided,
    Side,
    SignalGenerated,
    decode,
    stable_id,
)
from backend.persistence import Store
from backend.risk import var_limit
from backend.risk.portfolio_var import position_var
from backend.risk.rules import RiskState
from backend.settings import RiskConfig
from tests.support.agent_fixtures import drain, eth_candles, publish_bars, settings_for, wire

LIMIT = 0.001
EQUITY = 1.0
RISK = RiskConfig(var_limit=LIMIT, var_window=60, var_min_obs=30, alert_ratio=0.8,
                  alert_hysteresis=0.05, min_confidence=0.0)


def unit_var(candles, seq: int) -> float:  # noqa: ANN001
    """VaR (fraction of EQUITY) of a notional of 1 in ETH/BTC as of bar ``seq``."""
    h = CloseHistory(var_limit.history_len(RISK))
    for i in range(seq):
        h.append("ETH/BTC", int(candles.time[i]), float(candles.close[i]), i + 1)
    v = position_var(h.series(), {"ETH/BTC": 1.0}, EQUITY, RISK.var_level, RISK.var_method,
                     window=RISK.var_window, min_obs=RISK.var_min_obs).var
    assert v is not None and v > 0
    return v


def mark(candles, seq: int, ratio: float) -> PortfolioMarked:  # noqa: ANN001
    """The account at bar ``seq`` holding the ETH/BTC position whose VaR is ``ratio`` x
    the limit (flat for ratio 0)."""
    price = float(candles.close[seq - 1])
    notional = ratio * LIMIT / unit_var(candles, seq) if ratio else 0.0
    qty = notional / price
    t = int(candles.time[seq - 1])
    return PortfolioMarked(
        id=stable_id("mark", seq), source="venue:paper", bar_seq=seq, bar_time=t,
        cash=EQUITY - notional, equity=EQUITY, exposure=notional, day=t // 86_400_000_000_000,
        day_start_equity=EQUITY,
        positions={"ETH/BTC": PositionSnapshot(quantity=qty, avg_price=price, mark=price)}
        if qty else {})


async def new_agent(tmp_path: Path, redis) -> RiskAgent:  # noqa: ANN001
    agent = RiskAgent(settings_for(tmp_path, risk=RISK))
    await wire(agent, redis)
    await agent.setup()
    return agent


async def alerts(redis) -> list[RiskAlertRaised]:  # noqa: ANN001
    return [decode(f[DATA_FIELD]) for _, f in await redis.xrange(channels.RISK_ALERTS)]


def test_alert_on_crossing_once_with_hysteresis_and_after_restart(
        tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        candles = eth_candles(agent.settings)
        await publish_bars(fake_redis, candles, range(100), 1)
        bus = Bus(fake_redis, "execution")

        async def feed(a: RiskAgent, seq: int, ratio: float) -> None:
            await bus.publish(channels.TRADING_EVENTS, mark(candles, seq, ratio))
            await drain(a)

        for seq, ratio in [(80, 0.0), (81, 0.5), (82, 0.79)]:
            await feed(agent, seq, ratio)
        assert await alerts(fake_redis) == []
        assert agent.rules.var_alert == "ok" and agent.rules.var_ratio == pytest.approx(0.79)
        await feed(agent, 83, 0.9)  # crosses the alert ratio
        got = await alerts(fake_redis)
        assert [(a.level, a.metric, a.method) for a in got] == [
            ("warning", "var_99", "historical")]
        assert got[0].ratio == pytest.approx(0.9) and got[0].limit == LIMIT
        assert got[0].value == pytest.approx(0.9 * LIMIT)
        for seq, ratio in [(84, 0.95), (85, 0.78), (86, 0.85)]:  # 0.78: inside the band
            await feed(agent, seq, ratio)
        assert len(await alerts(fake_redis)) == 1
        await feed(agent, 87, 1.3)
        assert [a.level for a in await alerts(fake_redis)] == ["warning", "breach"]
        await feed(agent, 88, 1.1)

        again = await new_agent(tmp_path, fake_redis)  # a restarted agent keeps the level
        assert again.rules.var_alert == "breach"
        await feed(again, 89, 1.2)
        assert len(await alerts(fake_redis)) == 2
        await feed(again, 90, 0.0)  # flat: cleared (audited, no alert message)
        assert len(await alerts(fake_redis)) == 2
        raw = await fake_redis.get(channels.state_key("risk"))
        assert RiskState.model_validate(orjson.loads(raw)["state"]).var_alert == "ok"
        store = Store(agent.settings.db_url())
        rows = store.audit(action="var_alert")
        store.close()
        assert [r["decision"] for r in rows] == ["warning", "breach", "cleared"]
        assert "0.0% of the limit" in rows[-1]["reason"]

    asyncio.run(go())


def test_an_order_over_the_var_limit_is_rejected(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        candles = eth_candles(agent.settings)
        await publish_bars(fake_redis, candles, range(100), 1)
        await Bus(fake_redis, "execution").publish(channels.TRADING_EVENTS,
                                                   mark(candles, 95, 0.0))
        price = float(candles.close[94])
        sig = SignalGenerated(
            source="strategy:ETHBTC", symbol="ETH/BTC", side=Side.BUY, confidence=0.9,
            entry_price=price, stop_loss=price * 0.99, take_profit=price * 1.02, reason="t",
            strategy="sma_cross", bar_seq=95, bar_time=int(candles.time[94]))
        sig = sig.model_copy(update={"correlation_id": sig.id})
        await Bus(fake_redis, "compliance").publish(channels.SIGNALS_APPROVED, ComplianceDecided(
            source="compliance", correlation_id=sig.id, approved=True, rule="ok", reason="ok",
            signal=sig))
        await drain(agent)
        rejected = [decode(f[DATA_FIELD]) for _, f in
                    await fake_redis.xrange(channels.SIGNALS_REJECTED)]
        assert len(rejected) == 1 and isinstance(rejected[0], RiskDecided)
        assert rejected[0].rule == "var_limit" and "> limit 0.1000%" in rejected[0].reason
        assert await fake_redis.xlen(channels.ORDERS) == 0

    asyncio.run(go())
