"""Strategy agent hot reload on fakeredis: an UpdateStrategyParams switches the parameters on
the first bar after ``after_seq``, in that bar's transaction, and survives a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from agents.strategy import StrategyAgent
from backend import channels
from backend.bus import DATA_FIELD, Bus
from backend.mesh.hotreload import parse_state
from backend.messages import StrategyParamsUpdated, UpdateStrategyParams, decode
from backend.strategies.registry import get_strategy
from backend.strategies.runner import StrategyRunner
from tests.support.agent_fixtures import drain, eth_candles, publish_bars, settings_for, wire

AGENT = "strategy:ETHBTC"
SMA = get_strategy("sma_cross")
OLD = SMA.resolve_params({"fast": 10, "slow": 30})
NEW = SMA.resolve_params({"fast": 5, "slow": 20, "stop_atr": 1.5})


def command(after_seq: int, params: dict | None = None, symbol: str = "ETH/BTC",
            strategy: str = "sma_cross") -> UpdateStrategyParams:
    return UpdateStrategyParams(source="orchestrator", symbol=symbol, strategy=strategy,
                                params=params or {"fast": 5, "slow": 20, "stop_atr": 1.5},
                                after_seq=after_seq, run_id="run-1", actor="tester",
                                reason="unit test")


async def new_agent(tmp_path: Path, redis) -> StrategyAgent:  # noqa: ANN001
    agent = StrategyAgent(settings_for(tmp_path), AGENT, symbol="ETH/BTC")
    await wire(agent, redis)
    await agent.setup()
    return agent


async def state(redis):  # noqa: ANN001, ANN201
    return parse_state(await redis.get(channels.state_key(AGENT)))


def reference(candles, n: int, switch_at: int) -> list[tuple[int, str, dict]]:  # noqa: ANN001
    """(bar seq, side, params) a runner with OLD gives up to ``switch_at`` (row index), and
    one that ran NEW from the start gives from there on."""
    out = []
    for params, rows in ((OLD, range(switch_at)), (NEW, range(switch_at, n))):
        runner = StrategyRunner(SMA, params)
        for i in range(n):
            p = runner.on_bar(int(candles.time[i]), candles.open[i], candles.high[i],
                              candles.low[i], candles.close[i], candles.volume[i])
            if p is not None and i in rows:
                out.append((i + 1, "BUY" if p.side > 0 else "SELL", params))
    return out


def test_switch_happens_at_the_first_bar_after_after_seq(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        candles = eth_candles(agent.settings)
        assert (await state(fake_redis)).active.source == "config"
        last = await publish_bars(fake_redis, candles, range(300), 1)
        await drain(agent)
        await Bus(fake_redis, "orchestrator").publish(channels.STRATEGY_PARAMS, command(last))
        await drain(agent)
        st = await state(fake_redis)
        assert st.pending is not None and st.pending.after_seq == last
        assert st.active.params == OLD and agent.params == OLD  # not before the next bar
        await publish_bars(fake_redis, candles, range(300, 600), last + 1)
        await drain(agent)
        await check_switched(agent, fake_redis, candles, last)

    asyncio.run(go())


def test_a_command_read_before_older_bars_waits_for_its_bar(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    """The agent reads the command with (and before) bars published earlier: they keep the
    old parameters; the switch bar depends on ``after_seq`` only, not on read timing."""

    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        candles = eth_candles(agent.settings)
        last = await publish_bars(fake_redis, candles, range(300), 1)
        await Bus(fake_redis, "orchestrator").publish(channels.STRATEGY_PARAMS, command(last))
        await publish_bars(fake_redis, candles, range(300, 600), last + 1)
        await drain(agent)
        await check_switched(agent, fake_redis, candles, last)

    asyncio.run(go())


async def check_switched(agent: StrategyAgent, fake_redis, candles, last: int) -> None:  # noqa: ANN001
    """Signals, state, event and audit of a switch after bar seq ``last`` (of 600 bars)."""
    sigs = agent.store.signals()
    got = [(s["bar_seq"], s["side"], s["params"]) for s in sigs]
    assert got == reference(candles, 600, 300)  # old before, new from bar seq 301 on
    assert any(s["bar_seq"] <= last for s in sigs) and any(s["bar_seq"] > last for s in sigs)
    st = await state(fake_redis)
    assert st.pending is None
    assert (st.active.params, st.active.source, st.active.since_seq, st.active.run_id) == (
        NEW, "optimizer", last + 1, "run-1")
    events = [decode(f[DATA_FIELD]) for _, f in await fake_redis.xrange(
        channels.STRATEGY_PARAMS)]
    (done,) = [e for e in events if isinstance(e, StrategyParamsUpdated)]
    assert (done.from_seq, done.old_params, done.params) == (last + 1, OLD, NEW)
    (row,) = agent.store.audit(action="strategy_params_switched")
    assert row["actor"] == "tester" and "from bar seq 301" in row["reason"]
    assert str(OLD) in row["reason"] and str(NEW) in row["reason"]


def test_a_restart_keeps_the_applied_parameters(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        candles = eth_candles(agent.settings)
        last = await publish_bars(fake_redis, candles, range(200), 1)
        await Bus(fake_redis, "orchestrator").publish(channels.STRATEGY_PARAMS, command(last))
        last = await publish_bars(fake_redis, candles, range(200, 260), last + 1)
        await drain(agent)
        assert agent.params == NEW
        again = await new_agent(tmp_path, fake_redis)  # same Redis: a restarted process
        assert again.params == NEW and again.runner.bars_seen == 260
        await publish_bars(fake_redis, candles, range(260, 400), last + 1)
        await drain(again)
        later = [s for s in again.store.signals() if s["bar_seq"] > 260]
        assert later and all(s["params"] == NEW for s in later)

    asyncio.run(go())


def test_a_changed_config_applies_only_while_nothing_else_was_applied(
    tmp_path: Path, fake_redis  # noqa: ANN001
) -> None:
    async def go() -> None:
        await new_agent(tmp_path, fake_redis)
        changed = settings_for(tmp_path, default_strategy={
            "name": "sma_cross", "params": {"fast": 8, "slow": 40}})
        agent = StrategyAgent(changed, AGENT, symbol="ETH/BTC")
        await wire(agent, fake_redis)
        await agent.setup()
        assert agent.params["slow"] == 40  # config source: the new config wins

    asyncio.run(go())


@pytest.mark.parametrize(("params", "symbol", "strategy", "audited"), [
    ({"fast": 50, "slow": 20}, "ETH/BTC", "sma_cross", True),  # fast >= slow
    ({"nope": 1}, "ETH/BTC", "sma_cross", True),
    ({"fast": 5}, "ETH/BTC", "no_such_strategy", True),
    ({"fast": 5, "slow": 20}, "LTC/BTC", "sma_cross", False),  # another agent's
])
def test_invalid_or_foreign_commands_change_nothing(
    tmp_path: Path, fake_redis, params: dict, symbol: str, strategy: str, audited: bool,  # noqa: ANN001
) -> None:
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        await Bus(fake_redis, "orchestrator").publish(
            channels.STRATEGY_PARAMS, command(0, params, symbol, strategy))
        await drain(agent)
        st = await state(fake_redis)
        assert st.pending is None and st.active.params == OLD
        rows = agent.store.audit(action="strategy_params_command")
        assert [r["decision"] for r in rows] == (["rejected"] if audited else [])

    asyncio.run(go())


@pytest.mark.parametrize("switch", [True, False])
def test_a_failed_transaction_is_retried_without_feeding_the_bar_twice(
    tmp_path: Path, fake_redis, monkeypatch: pytest.MonkeyPatch, switch: bool,  # noqa: ANN001
) -> None:
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        candles = eth_candles(agent.settings)
        last = await publish_bars(fake_redis, candles, range(100), 1)
        if switch:
            await Bus(fake_redis, "orchestrator").publish(channels.STRATEGY_PARAMS,
                                                          command(last))
        await drain(agent)
        failed: list[str] = []

        def flaky(agent_id: str, point: str, stream: str = "") -> None:
            if stream == channels.MARKET_DATA and not failed:
                failed.append(stream)
                raise RedisConnectionError("EXEC lost")

        monkeypatch.setattr("agents.base.failpoints.hit", flaky)
        await publish_bars(fake_redis, candles, range(100, 101), last + 1)
        await drain(agent)
        assert failed and agent.params == (NEW if switch else OLD)
        assert agent.runner.bars_seen == 101 and agent.runner.last_time == int(candles.time[100])
        assert agent.dead_letters == 0
        assert (await state(fake_redis)).active.since_seq == (last + 1 if switch else 0)

    asyncio.run(go())
