"""The compliance agent fails closed on a stale portfolio, like risk (issue 15)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agents.compliance import ComplianceAgent
from backend import channels
from backend.bus import DATA_FIELD, Bus
from backend.messages import ComplianceDecided, PortfolioMarked, Side, SignalGenerated, decode
from backend.settings import RiskConfig
from tests.support.agent_fixtures import drain, settings_for, wire

T = 1_515_560_100_000_000_000


def signal(seq: int) -> SignalGenerated:
    return SignalGenerated(id=f"sig-{seq}", source="strategy:ETHBTC", symbol="ETH/BTC",
                           side=Side.BUY, confidence=0.9, entry_price=0.1, stop_loss=0.09,
                           take_profit=0.11, reason="t", strategy="sma_cross", bar_seq=seq,
                           bar_time=T + seq * 300 * 10**9)


async def decisions(redis) -> list[tuple[str, bool, str]]:  # noqa: ANN001
    out = []
    for stream in (channels.SIGNALS_APPROVED, channels.SIGNALS_REJECTED):
        for _i, f in await redis.xrange(stream):
            m = decode(f[DATA_FIELD])
            if isinstance(m, ComplianceDecided):
                out.append((m.signal.id, m.approved, m.rule))
    return sorted(out)


def test_no_portfolio_within_the_wait_is_a_rejection(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = ComplianceAgent(settings_for(tmp_path, risk=RiskConfig(portfolio_wait_s=0.05)))
        await wire(agent, fake_redis)
        await agent.setup()
        await Bus(fake_redis, "strategy:ETHBTC").publish(channels.SIGNALS, signal(5))
        await drain(agent)
        assert await decisions(fake_redis) == [("sig-5", False, "stale_portfolio")]
        # with the mark of its bar there, the next signal is judged normally
        await Bus(fake_redis, "execution").publish(channels.TRADING_EVENTS, PortfolioMarked(
            source="execution", bar_seq=6, bar_time=T + 6 * 300 * 10**9, cash=1.0,
            equity=1.0, exposure=0.0, day=(T + 6 * 300 * 10**9) // 86_400_000_000_000,
            day_start_equity=1.0))
        await Bus(fake_redis, "strategy:ETHBTC").publish(channels.SIGNALS, signal(6))
        await drain(agent)
        assert await decisions(fake_redis) == [("sig-5", False, "stale_portfolio"),
                                               ("sig-6", True, "ok")]

    asyncio.run(go())
