"""The optimizer agent on fakeredis: requests from the stream, bars from market_data, runs
persisted, the running parameters' baseline, proposals, and the schedule."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from agents.optimizer import OptimizerAgent
from backend import channels
from backend.bus import DATA_FIELD, Bus
from backend.mesh.hotreload import ActiveParams, StrategyAgentState
from backend.messages import ParamsProposed, RunOptimizer, decode
from backend.optimizer.proposal import ProposalRecord, make_request, proposal_key
from backend.settings import OptimizerAgentConfig
from backend.strategies.registry import get_strategy
from tests.support.agent_fixtures import drain, eth_candles, publish_bars, settings_for, wire

# all-in: these tests are about the agent's runs and proposals, on 800 bars, where the
# mesh's model (min confidence 0.85) trades too rarely to score every fold
GA = {"population": 6, "generations": 1, "walk_forward": 2, "seed": 3, "sizing": "all-in"}


async def new_agent(tmp_path: Path, redis, **opt: object) -> OptimizerAgent:  # noqa: ANN001
    cfg = OptimizerAgentConfig(**{"min_bars": 200, "margin": 0.0, "reject_overfit": False, **opt})
    agent = OptimizerAgent(settings_for(tmp_path, optimizer=cfg))
    await wire(agent, redis)
    await agent.setup()
    return agent


def request(agent: OptimizerAgent, run_id: str, until_seq: int = 0, **kw: object) -> RunOptimizer:
    return make_request(agent.settings, "ETH/BTC", "sma_cross", run_id=run_id,
                        until_seq=until_seq, requested_by="api@test", reason="unit test",
                        **{**GA, **kw})


async def queue(redis, req: RunOptimizer) -> None:  # noqa: ANN001
    await Bus(redis, "api").publish(channels.OPTIMIZER_REQUESTS, req)


async def proposals(redis) -> list[ParamsProposed]:  # noqa: ANN001
    return [decode(f[DATA_FIELD]) for _, f in await redis.xrange(channels.OPTIMIZER_PROPOSALS)]


async def pending(redis) -> int:  # noqa: ANN001
    (g,) = await redis.xinfo_groups(channels.OPTIMIZER_REQUESTS)
    return int(g["pending"])


def running(redis, params: dict) -> Awaitable[Any]:  # noqa: ANN001
    """Make the ETH/BTC strategy agent's state say it runs sma_cross with ``params``."""
    st = StrategyAgentState(active=ActiveParams(strategy="sma_cross", params=params))
    return redis.set(channels.state_key("strategy:ETHBTC"), st.to_json())


def test_bars_are_the_newest_of_the_symbol_up_to_until_seq(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        c = eth_candles(agent.settings)
        await publish_bars(fake_redis, c, range(5000), 1)
        bars = await agent.bars("ETH/BTC", until_seq=4500, max_bars=3000)
        times = sorted(bars)
        assert len(times) == 3000 and times[-1] == int(c.time[4499])
        assert times[0] == int(c.time[1500])
        assert bars[times[-1]] == (c.open[4499], c.high[4499], c.low[4499], c.close[4499],
                                   c.volume[4499])
        assert await agent.bars("LTC/BTC") == {}

    asyncio.run(go())


def test_too_few_bars_is_a_failed_run_with_the_reason(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        await publish_bars(fake_redis, eth_candles(agent.settings), range(120), 1)
        await queue(fake_redis, request(agent, "r-short"))
        await drain(agent)
        run = agent.store.optimizer_run("r-short")
        assert run["status"] == "failed" and run["symbols"] == ["ETH/BTC"]
        assert "not enough bars: 120 of ETH/BTC" in run["error"] and "needs 200" in run["error"]
        assert run["config"]["population"] == 6
        assert await proposals(fake_redis) == [] and await pending(fake_redis) == 0

    asyncio.run(go())


def test_a_run_that_beats_the_running_params_is_persisted_and_proposed(
    tmp_path: Path, fake_redis  # noqa: ANN001
) -> None:
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        c = eth_candles(agent.settings)
        last = await publish_bars(fake_redis, c, range(900), 1)
        # Running parameters that cannot trade (fast >= slow): undefined baseline.
        await running(fake_redis, {"fast": 40, "slow": 20})
        await queue(fake_redis, request(agent, "r-win", until_seq=last - 100))
        await drain(agent)
        run = agent.store.optimizer_run("r-win")
        assert run["status"] == "finished" and run["mean_out_of_sample"] is not None
        assert {g["fold"] for g in run["generations"]} == {0, 1}
        assert run["data_end"] == int(c.time[799]) + 1  # bars up to until_seq only
        rec = ProposalRecord.model_validate(agent.store.get_state(proposal_key("r-win")))
        assert rec.status == "proposed" and rec.baseline is None
        assert rec.params == run["best_params"] and rec.current_params == {"fast": 40,
                                                                           "slow": 20}
        (p,) = await proposals(fake_redis)
        assert (p.run_id, p.symbol, p.params, p.score) == (
            "r-win", "ETH/BTC", run["best_params"], run["mean_out_of_sample"])
        assert await pending(fake_redis) == 0

    asyncio.run(go())


def test_a_run_that_does_not_beat_them_by_the_margin_is_not_proposed(
    tmp_path: Path, fake_redis  # noqa: ANN001
) -> None:
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis, margin=1e6)
        await publish_bars(fake_redis, eth_candles(agent.settings), range(900), 1)
        await queue(fake_redis, request(agent, "r-lose"))
        await drain(agent)
        rec = ProposalRecord.model_validate(agent.store.get_state(proposal_key("r-lose")))
        assert rec.status == "not_proposed" and "margin 1e+06" in rec.reason
        cfg = agent.settings.strategy_for("ETH/BTC")  # no state: the configured params
        assert rec.current_params == get_strategy(cfg.name).resolve_params(cfg.params)
        assert rec.baseline is not None and len(rec.baseline_folds) == 2
        assert await proposals(fake_redis) == []

    asyncio.run(go())


def test_a_stop_during_a_run_leaves_the_request_queued_and_unrecorded(
    tmp_path: Path, fake_redis  # noqa: ANN001
) -> None:
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis)
        await publish_bars(fake_redis, eth_candles(agent.settings), range(900), 1)
        await queue(fake_redis, request(agent, "r-stop", generations=3))
        agent.request_stop()
        with pytest.raises(asyncio.CancelledError):
            await drain(agent)
        assert await pending(fake_redis) == 1  # redelivered to the restarted agent
        assert agent.store.optimizer_run("r-stop")["status"] == "running"
        again = await new_agent(tmp_path, fake_redis)
        await drain(again)
        assert again.store.optimizer_run("r-stop")["status"] == "finished"
        assert await pending(fake_redis) == 0

    asyncio.run(go())


def test_the_schedule_queues_one_request_per_symbol_and_skips_while_busy(
    tmp_path: Path, fake_redis  # noqa: ANN001
) -> None:
    async def go() -> None:
        agent = await new_agent(tmp_path, fake_redis, interval_s=60)
        await fake_redis.set(channels.REPLAY_CURSOR_KEY, 42)
        period = 60 * 10**9
        (req,) = await agent.enqueue_scheduled(1_000, period)
        assert (req.symbol, req.until_seq, req.requested_by) == ("ETH/BTC", 42,
                                                                  "optimizer@schedule")
        assert req.population == 30 and req.walk_forward == 3  # the [optimizer] settings
        assert int(await fake_redis.get(channels.OPTIMIZER_SCHEDULE_KEY)) >= 1_000 + period
        assert await agent.enqueue_scheduled(2_000, period) == []  # the first is queued
        assert await fake_redis.xlen(channels.OPTIMIZER_REQUESTS) == 1

    asyncio.run(go())


def test_by_default_a_run_is_scored_by_the_meshs_own_trading_model(
    tmp_path: Path, fake_redis  # noqa: ANN001
) -> None:
    async def go() -> None:
        cfg = OptimizerAgentConfig(min_bars=200, margin=0.0, reject_overfit=False)
        agent = OptimizerAgent(settings_for(
            tmp_path, optimizer=cfg,
            risk={"min_confidence": 0.3, "daily_drawdown_limit": 0.5}))
        await wire(agent, fake_redis)
        await agent.setup()
        assert agent.settings.optimizer.sizing == "risk"
        await publish_bars(fake_redis, eth_candles(agent.settings), range(2400), 1)
        await queue(fake_redis, make_request(
            agent.settings, "ETH/BTC", "sma_cross", run_id="r-risk", until_seq=0,
            requested_by="api@test", reason="unit test", population=6, generations=1,
            walk_forward=2, seed=3))
        await drain(agent)
        run = agent.store.optimizer_run("r-risk")
        assert run["status"] == "finished" and run["config"]["sizing"] == "risk"
        assert run["mean_in_sample"] is not None and run["evaluations"] > 0

    asyncio.run(go())
