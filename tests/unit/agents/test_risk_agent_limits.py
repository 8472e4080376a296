"""The risk agent's limits under queues and lost state (issue 15), in process on fakeredis.

* approvals queued for one symbol do not stack: what risk approved and the venue has not
  filled yet counts against the position, exposure and cash caps (in flight);
* a signal far behind the latest mark is refused (``stale_signal``); orders carry an
  expiry;
* while halted, a close still passes (reduce-only) and entries do not;
* the breaker trip cancels resting entries (``CancelAllOrders(entries_only=True)``);
* a latch Redis lost is not a reset: only a reset record newer than the trip is.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from agents.risk import RiskAgent
from backend import channels
from backend.bus import DATA_FIELD, Bus
from backend.mesh.halt import HaltState, reset
from backend.messages import (
    CancelAllOrders,
    ComplianceDecided,
    OrderCancelled,
    OrderFilled,
    PortfolioMarked,
    PositionSnapshot,
    RiskDecided,
    Side,
    SignalGenerated,
    SubmitOrder,
    decode,
    stable_id,
)
from backend.persistence import Store, make_engine
from backend.settings import RiskConfig
from tests.support.agent_fixtures import drain, settings_for, wire

T0 = 1_700_000_100_000_000_000 - 1_700_000_100_000_000_000 % 86_400_000_000_000 + 3600 * 10**9
BAR = 300 * 10**9
PRICES = {"ETH/BTC": 0.05, "LTC/BTC": 0.004}


def mark(seq: int, equity: float = 1.0, positions: dict[str, float] | None = None,
         day_start: float = 1.0) -> PortfolioMarked:
    pos = positions or {}
    notional = sum(q * PRICES[s] for s, q in pos.items())
    return PortfolioMarked(
        id=stable_id("mark", seq, equity), source="execution", bar_seq=seq,
        bar_time=T0 + seq * BAR, cash=equity - notional, equity=equity,
        exposure=abs(notional), day=(T0 + seq * BAR) // 86_400_000_000_000,
        day_start_equity=day_start,
        positions={s: PositionSnapshot(quantity=q, avg_price=PRICES[s], mark=PRICES[s])
                   for s, q in pos.items()})


def approval(n: int, seq: int, symbol: str = "ETH/BTC", side: Side = Side.BUY
             ) -> ComplianceDecided:
    p = PRICES[symbol]
    stop, target = (p * 0.98, p * 1.04) if side is Side.BUY else (p * 1.02, p * 0.96)
    sig = SignalGenerated(
        id=f"sig-{n}", correlation_id=f"sig-{n}", source="strategy:x", symbol=symbol,
        side=side, confidence=0.95, entry_price=p, stop_loss=stop, take_profit=target,
        reason="test", strategy="sma_cross", bar_seq=seq, bar_time=T0 + seq * BAR)
    return ComplianceDecided(id=f"comp-{n}", source="compliance", correlation_id=sig.id,
                             approved=True, rule="ok", reason="ok", signal=sig)


async def stream(redis, name: str) -> list:  # noqa: ANN001
    return [decode(f[DATA_FIELD]) for _i, f in await redis.xrange(name)]


async def orders(redis) -> list[SubmitOrder]:  # noqa: ANN001
    return [m for m in await stream(redis, channels.ORDERS) if isinstance(m, SubmitOrder)]


async def refusals(redis) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(m.signal.id, m.rule) for m in await stream(redis, channels.SIGNALS_REJECTED)
            if isinstance(m, RiskDecided)]


async def new_agent(tmp_path: Path, redis, **risk: object) -> RiskAgent:  # noqa: ANN001
    cfg = RiskConfig(**{"max_position_pct": 0.25, "max_symbol_exposure_pct": 0.25,
                        **risk})  # type: ignore[arg-type]
    agent = RiskAgent(settings_for(tmp_path, symbols=["ETH/BTC", "LTC/BTC"], risk=cfg))
    await wire(agent, redis)
    await agent.setup()
    return agent


def test_queued_approvals_do_not_stack_orders(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        ex, cmp = Bus(fake_redis, "execution"), Bus(fake_redis, "compliance")
        await ex.publish(channels.TRADING_EVENTS, mark(1))
        for n in range(4):  # four approvals queued before any fill
            await cmp.publish(channels.SIGNALS_APPROVED, approval(n, 1))
        await drain(agent)
        sent = await orders(fake_redis)
        assert [o.signal_id for o in sent] == ["sig-0"]
        assert sent[0].quantity * PRICES["ETH/BTC"] <= 0.25 + 1e-9
        assert await refusals(fake_redis) == [(f"sig-{n}", "already_in_position")
                                              for n in (1, 2, 3)]
        # stamped for execution: the price it was sized at and an expiry
        assert sent[0].ref_price == PRICES["ETH/BTC"]
        assert sent[0].expires_at is not None and sent[0].expires_at > sent[0].ts

        # the venue cancels it; after the next mark the symbol is free again
        await ex.publish(channels.TRADING_EVENTS, OrderCancelled(
            source="execution", client_order_id=sent[0].client_order_id, symbol="ETH/BTC",
            reason="expired"))
        await ex.publish(channels.TRADING_EVENTS, mark(2))
        await cmp.publish(channels.SIGNALS_APPROVED, approval(9, 2))
        await drain(agent)
        assert [o.signal_id for o in await orders(fake_redis)] == ["sig-0", "sig-9"]

    asyncio.run(go())


def test_an_entry_filled_net_of_a_base_asset_fee_leaves_nothing_in_flight(
        tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    """Binance spot takes a buy's fee in the coins bought: the fills sum to less than the
    order, but the venue says the order is done -- the rest must not stay in flight for
    good (it once read as "already long" a fee's worth of coins and blocked every entry)."""
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        ex, cmp = Bus(fake_redis, "execution"), Bus(fake_redis, "compliance")
        await ex.publish(channels.TRADING_EVENTS, mark(1))
        await cmp.publish(channels.SIGNALS_APPROVED, approval(1, 1))
        await drain(agent)
        (sent,) = await orders(fake_redis)
        net = sent.quantity * 0.999
        await ex.publish(channels.TRADING_EVENTS, OrderFilled(
            source="execution", fill_id="f1", client_order_id=sent.client_order_id,
            symbol="ETH/BTC", side=Side.BUY, quantity=net, price=PRICES["ETH/BTC"],
            fee=sent.quantity * 0.001 * PRICES["ETH/BTC"], bar_seq=1, fill_time=T0,
            order_done=True))
        # the exit sells what is held; the fee's coins are dust the mark leaves out
        await ex.publish(channels.TRADING_EVENTS, mark(2, positions={"ETH/BTC": net}))
        await ex.publish(channels.TRADING_EVENTS, mark(3))
        await drain(agent)
        assert agent.rules.in_flight == {}
        await cmp.publish(channels.SIGNALS_APPROVED, approval(2, 3))
        await drain(agent)
        assert [o.signal_id for o in await orders(fake_redis)] == ["sig-1", "sig-2"]
        assert await refusals(fake_redis) == []

    asyncio.run(go())


def test_in_flight_orders_count_against_the_total_exposure_cap(tmp_path: Path,
                                                              fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis, max_total_exposure_pct=0.3)
        ex, cmp = Bus(fake_redis, "execution"), Bus(fake_redis, "compliance")
        await ex.publish(channels.TRADING_EVENTS, mark(1))
        await cmp.publish(channels.SIGNALS_APPROVED, approval(1, 1, "ETH/BTC"))
        await cmp.publish(channels.SIGNALS_APPROVED, approval(2, 1, "LTC/BTC"))
        await drain(agent)
        notional = sum(o.quantity * PRICES[o.symbol] for o in await orders(fake_redis))
        assert notional <= 0.3 + 1e-9  # 0.25 + 0.25 without counting the first in flight

        # a restarted agent keeps what is in flight (durable state)
        again = await new_agent(tmp_path, fake_redis, max_total_exposure_pct=0.3)
        assert set(again.rules.in_flight) == {o.client_order_id
                                             for o in await orders(fake_redis)}

    asyncio.run(go())


def test_a_stale_entry_is_refused_and_a_stale_close_passes(tmp_path: Path,
                                                         fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis, max_signal_age_s=900)
        ex, cmp = Bus(fake_redis, "execution"), Bus(fake_redis, "compliance")
        await ex.publish(channels.TRADING_EVENTS, mark(20, positions={"LTC/BTC": 10.0}))
        await cmp.publish(channels.SIGNALS_APPROVED, approval(1, 10, "ETH/BTC"))  # 50 min old
        await cmp.publish(channels.SIGNALS_APPROVED, approval(2, 10, "LTC/BTC", Side.SELL))
        await drain(agent)
        assert await refusals(fake_redis) == [("sig-1", "stale_signal")]
        (close,) = await orders(fake_redis)
        assert (close.signal_id, close.reduce_only, close.side) == ("sig-2", True, Side.SELL)

    asyncio.run(go())


def test_halted_closes_pass_entries_do_not(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        ex, cmp = Bus(fake_redis, "execution"), Bus(fake_redis, "compliance")
        await fake_redis.set(channels.HALT_KEY, HaltState(kind="kill_switch",
                                                          reason="op").to_json())
        await ex.publish(channels.TRADING_EVENTS, mark(1, positions={"LTC/BTC": 10.0}))
        await cmp.publish(channels.SIGNALS_APPROVED, approval(1, 1, "ETH/BTC"))
        await cmp.publish(channels.SIGNALS_APPROVED, approval(2, 1, "LTC/BTC", Side.SELL))
        await drain(agent)
        assert await refusals(fake_redis) == [("sig-1", "halted")]
        (close,) = await orders(fake_redis)
        assert close.signal_id == "sig-2" and close.reduce_only
        assert close.quantity == 10.0

    asyncio.run(go())


def test_breaker_cancels_entries_and_a_lost_latch_is_not_a_reset(tmp_path: Path,
                                                                fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis, daily_drawdown_limit=0.02)
        ex, cmp = Bus(fake_redis, "execution"), Bus(fake_redis, "compliance")
        await ex.publish(channels.TRADING_EVENTS, mark(1))
        await ex.publish(channels.TRADING_EVENTS, mark(2, equity=0.97))  # -3%: trips
        await drain(agent)
        assert agent.rules.halted and agent.rules.halted_ts > 0
        cmds = await stream(fake_redis, channels.ORDERS)
        assert [(type(c), c.entries_only, c.flatten) for c in cmds] == \
            [(CancelAllOrders, True, False)]

        # Redis loses the latch (FLUSHDB of the key, eviction): still halted
        await fake_redis.delete(channels.HALT_KEY)
        await ex.publish(channels.TRADING_EVENTS, mark(3, equity=0.97))
        await cmp.publish(channels.SIGNALS_APPROVED, approval(1, 3))
        await drain(agent)
        assert agent.rules.halted
        assert await refusals(fake_redis) == [("sig-1", "halted")]

        # an audited reset (newer than the trip) is adopted at the next mark
        store = Store(make_engine(agent.settings.db_url()))
        await reset(fake_redis, store, reason="reviewed", actor="op")
        store.close()
        await ex.publish(channels.TRADING_EVENTS, mark(4, equity=0.97))
        await cmp.publish(channels.SIGNALS_APPROVED, approval(2, 4))
        await drain(agent)
        assert not agent.rules.halted
        assert [o.signal_id for o in await orders(fake_redis)] == ["sig-2"]

    asyncio.run(go())
