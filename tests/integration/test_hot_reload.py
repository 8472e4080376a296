"""A GA result reaches a running strategy agent without a restart (real redis-server).

The strategy agent and the optimizer agent run as processes; the test plays the
market_data agent (bars and the replay cursor) and the orchestrator (the REST request's
logic and the proposal pump, :class:`orchestrator.optimizer_control.OptimizerControl`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import redis

from backend import channels
from backend.bus import Bus
from backend.marketdata.candles import load_dir
from backend.mesh.hotreload import parse_state
from backend.mesh.pipeline import bar_message
from backend.optimizer.proposal import ProposalRecord, proposal_key
from backend.persistence import Store, make_engine
from backend.rest.models import OptimizerRunRequest
from backend.settings import OptimizerAgentConfig, Settings
from backend.strategies.registry import get_strategy
from backend.strategies.runner import StrategyRunner
from orchestrator.optimizer_control import OptimizerControl
from tests.support.agentproc import agent_env, make_settings, start_agent, stop
from tests.support.helpers import aeventually, eventually

pytestmark = pytest.mark.integration
AGENT = "strategy:ETHBTC"
FIRST, TOTAL = 600, 1500  # bars before the run / in all


def _running(r: redis.Redis, agent_id: str) -> int | None:
    raw = r.get(channels.health_key(agent_id))
    hb = orjson.loads(raw) if raw else None
    return hb["pid"] if hb and hb["state"] == "running" else None


def _caught_up(r: redis.Redis) -> bool:
    info = r.xinfo_stream(channels.MARKET_DATA)
    for g in r.xinfo_groups(channels.MARKET_DATA):
        if g["name"].decode() == AGENT:
            return not g["pending"] and g["last-delivered-id"] == info["last-generated-id"]
    return False


def _publish(r: redis.Redis, candles, rows: range) -> None:  # noqa: ANN001
    bus = Bus(r, "market_data")  # type: ignore[arg-type]
    for i in rows:
        pipe = r.pipeline(transaction=True)
        bus.stage(pipe, channels.MARKET_DATA, bar_message(candles, i, i + 1, "5m"))
        pipe.set(channels.REPLAY_CURSOR_KEY, i + 1)
        pipe.execute()


async def _optimize_and_apply(settings: Settings, store: Store) -> str:
    """Ask for a run as the API does; pump proposals as the orchestrator does."""
    r = redis.asyncio.Redis.from_url(settings.redis_url)
    try:
        oc = OptimizerControl(settings, r, store)
        acc = await oc.request_run(OptimizerRunRequest(symbol="ETH/BTC"), "api@test")
        assert acc.until_seq == FIRST

        async def applied() -> bool:
            await oc.pump()
            rec = store.get_state(proposal_key(acc.run_id))
            run = store.optimizer_run(acc.run_id)
            assert run is None or run["status"] != "failed", run
            assert rec is None or rec["status"] != "not_proposed", rec
            return rec is not None and rec["status"] == "applied"

        await aeventually(applied, timeout=60, interval=0.1, message="run not applied")
        return acc.run_id
    finally:
        await r.aclose()


def test_optimizer_result_is_hot_reloaded_into_the_running_strategy_agent(
    redis_url: str, tmp_path: Path
) -> None:
    # all-in: on these 800 bars the mesh's model (min confidence 0.85) trades too rarely to
    # score every fold, and this test is about the hot reload, not the fitness
    opt = OptimizerAgentConfig(population=8, generations=2, walk_forward=2, seed=0, margin=0.0,
                          reject_overfit=False, min_bars=200, auto_apply=True, sizing="all-in")
    settings = make_settings(tmp_path, redis_url, symbols=["ETH/BTC"], optimizer=opt)
    candles = load_dir(settings.data_dir, ["ETH/BTC"])["ETH/BTC"]
    r = redis.Redis.from_url(redis_url)
    env = agent_env(settings, tmp_path)
    strategy = start_agent("strategy", env, tmp_path, symbol="ETH/BTC")
    optimizer = start_agent("optimizer", env, tmp_path)
    store = Store(make_engine(settings.db_url()))
    try:
        eventually(lambda: _running(r, AGENT) and _running(r, "optimizer"), timeout=60,
                   message="agents not running")
        pid = _running(r, AGENT)
        _publish(r, candles, range(FIRST))
        eventually(lambda: _caught_up(r), timeout=60, message="bars not consumed")

        run_id = asyncio.run(_optimize_and_apply(settings, store))
        rec = ProposalRecord.model_validate(store.get_state(proposal_key(run_id)))
        assert (rec.applied_by, rec.after_seq) == ("orchestrator", FIRST)
        new = get_strategy("sma_cross").resolve_params(rec.params)
        old = get_strategy("sma_cross").resolve_params({})
        assert new != old

        _publish(r, candles, range(FIRST, TOTAL))
        eventually(lambda: _caught_up(r), timeout=60, message="bars not consumed")

        assert strategy.poll() is None and _running(r, AGENT) == pid == strategy.pid
        sigs = store.signals("ETH/BTC")
        before = [s for s in sigs if s["bar_seq"] <= FIRST]
        after = [s for s in sigs if s["bar_seq"] > FIRST]
        assert before and after
        assert all(s["params"] == old for s in before)
        assert all(s["params"] == new for s in after)
        assert [(s["bar_seq"], s["side"]) for s in after] == _reference(candles, new)
        state = parse_state(r.get(channels.state_key(AGENT)))
        assert (state.active.params, state.active.since_seq, state.active.run_id) == (
            new, FIRST + 1, run_id)
        applied = store.audit(action="optimizer_params_applied")
        switched = store.audit(action="strategy_params_switched")
        assert [a["correlation_id"] for a in applied] == [run_id]
        assert f"{old} -> sma_cross {rec.params}" in applied[0]["reason"]
        assert len(switched) == 1 and f"from bar seq {FIRST + 1}" in switched[0]["reason"]
    finally:
        stop(strategy)
        stop(optimizer)
        store.close()
        r.close()


def _reference(candles, params: dict) -> list[tuple[int, str]]:  # noqa: ANN001
    """Signals a runner with ``params`` from the start gives after bar seq FIRST."""
    runner, out = StrategyRunner(get_strategy("sma_cross"), params), []
    for i in range(TOTAL):
        p = runner.on_bar(int(candles.time[i]), candles.open[i], candles.high[i],
                          candles.low[i], candles.close[i], candles.volume[i])
        if p is not None and i >= FIRST:
            out.append((i + 1, "BUY" if p.side > 0 else "SELL"))
    return out
