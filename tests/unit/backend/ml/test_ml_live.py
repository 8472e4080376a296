"""Live ML: the hit-rate monitor and retrain rule (hand-made sequences), and a strategy agent
on fakeredis that trains, retrains, adopts at the next bar and keeps its version on restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents.strategy import StrategyAgent
from backend import channels
from backend.messages import ModelMetricsReported, ModelRetrainStatus, decode
from backend.ml.live import (
    HitRateMonitor,
    MlAgentState,
    MonitorState,
    call_side,
    ml_state_key,
    parse_ml_state,
    retrain_trigger,
)
from backend.ml.store import ModelStore, model_root
from backend.persistence import Store, make_engine
from backend.settings import MlConfig
from backend.strategies.ml_classifier import FittedMlClassifier
from backend.strategies.runner import StrategyRunner
from tests.support.agent_fixtures import drain, eth_candles, publish_bars, settings_for, wire

AGENT = "strategy:ETHBTC"
PARAMS = {"horizon": 3, "train_bars": 400, "threshold": 0.55}


# ------------------------------------------------------------------ monitor (pure)
def test_calls_are_resolved_horizon_bars_later_ties_dropped() -> None:
    mon = HitRateMonitor(horizon=2, window=10)
    closes = [10.0, 11.0, 12.0, 11.0, 11.0, 12.0, 13.0]
    p_up = [0.7, 0.4, 0.6, 0.5, 0.2, float("nan"), 0.9]
    got = [mon.observe(i, c, p) for i, (c, p) in enumerate(zip(closes, p_up, strict=True))]
    # bar 2 resolves the up call of bar 0 (12 > 10): hit; bar 3 the down call of bar 1
    # (11 == 11): tie, dropped; bar 4 the up call of bar 2 (11 < 12): miss; bar 3 made no
    # call (p_up 0.5); bar 6 resolves bar 4's down call (13 > 11): miss; bar 5: NaN, none
    assert got == [[], [], [True], [], [False], [], [False]]
    assert mon.outcomes == "100" and mon.resolved == 3
    assert mon.hit_rate == pytest.approx(1 / 3)
    assert [(c.index, c.side) for c in mon.calls] == [(6, 1)]


def test_the_window_keeps_the_last_outcomes_and_state_round_trips() -> None:
    mon = HitRateMonitor(horizon=1, window=4)
    for i, c in enumerate([1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0]):
        mon.observe(i, c, 0.9)  # always "up": hits when the next close is higher
    assert mon.outcomes == "0011"  # 2,3 up (hits), 2,1 down, then up up: last four
    assert mon.hit_rate == 0.5
    again = HitRateMonitor(1, 4, MonitorState.model_validate_json(mon.state().model_dump_json()))
    assert (again.outcomes, again.calls) == (mon.outcomes, mon.calls)
    mon.reset()
    assert mon.hit_rate is None and mon.resolved == 0 and not mon.calls


def test_call_side() -> None:
    assert [call_side(p) for p in (0.51, 0.49, 0.5, float("nan"))] == [1, -1, 0, 0]


@pytest.mark.parametrize(("hit", "resolved", "since", "every", "want"), [
    (0.45, 99, 0, 0, None),          # below threshold but too few predictions
    (0.45, 100, 0, 0, "hit_rate"),   # enough, below 0.5
    (0.50, 100, 0, 0, None),         # at the threshold is not below it
    (None, 0, 0, 0, None),
    (0.60, 100, 499, 500, None),     # schedule not yet due
    (0.60, 100, 500, 500, "schedule"),
    (0.40, 100, 500, 500, "hit_rate"),  # both: the hit rate wins
    (0.60, 100, 10_000, 0, None),    # schedule off
])
def test_retrain_rule(hit, resolved, since, every, want) -> None:  # noqa: ANN001
    assert retrain_trigger(hit, resolved, since, threshold=0.5, min_predictions=100,
                           every_bars=every) == want


def test_state_parsing_is_lenient() -> None:
    assert parse_ml_state(None) is None and parse_ml_state(b"{bad") is None
    st = MlAgentState(bars=3)
    assert parse_ml_state(st.to_json()) == st


# ------------------------------------------------------------------ agent (fakeredis)
def _settings(tmp_path: Path, **ml: object):  # noqa: ANN202
    cfg = {"min_train_bars": 400, "hit_rate_threshold": 0.99, "min_predictions": 30,
           "hit_rate_window": 50, "metrics_every_bars": 10, "retry_after_bars": 50}
    cfg.update(ml)
    return settings_for(tmp_path, default_strategy={"name": "ml_classifier", "params": PARAMS},
                        ml=MlConfig(**cfg))


async def _agent(settings, redis) -> StrategyAgent:  # noqa: ANN001
    agent = StrategyAgent(settings, AGENT, symbol="ETH/BTC")
    await wire(agent, redis)
    await agent.setup()
    return agent


async def _feed(agent: StrategyAgent, redis, candles, rows: range) -> None:  # noqa: ANN001
    for i in rows:  # one bar at a time, as a replay with back-pressure delivers them
        await publish_bars(redis, candles, range(i, i + 1), i + 1)
        await drain(agent)


async def _messages(ps) -> list:  # noqa: ANN001
    out = []
    while (m := await ps.get_message(timeout=0.01)) is not None:
        if m["type"] == "message":
            out.append(decode(m["data"]))
    return out


def _reference(store: ModelStore, version: int, candles, n: int) -> dict[int, tuple]:  # noqa: ANN001
    """bar seq -> (side, confidence) of a runner with ``version`` attached from the start."""
    runner = StrategyRunner(FittedMlClassifier(store.load(version)), PARAMS)
    out = {}
    for i in range(n):
        p = runner.on_bar(int(candles.time[i]), candles.open[i], candles.high[i],
                          candles.low[i], candles.close[i], candles.volume[i])
        if p is not None:
            out[i + 1] = ("BUY" if p.side > 0 else "SELL", p.confidence)
    return out


def test_agent_trains_retrains_on_hit_rate_adopts_next_bar_and_keeps_it(
        tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        settings = _settings(tmp_path)
        candles = eth_candles(settings)
        ps = fake_redis.pubsub()
        await ps.subscribe(channels.RETRAIN_STATUS, channels.MODEL_METRICS)
        agent = await _agent(settings, fake_redis)
        await publish_bars(fake_redis, candles, range(399), 1)
        await drain(agent)
        st = parse_ml_state(await fake_redis.get(ml_state_key(AGENT)))
        assert st.active is None and st.pending is None
        assert Store(make_engine(settings.db_url())).signals() == []  # no model: no signal

        await _feed(agent, fake_redis, candles, range(399, 400))  # 400 bars held: initial
        st = parse_ml_state(await fake_redis.get(ml_state_key(AGENT)))
        assert st.active is None and (st.pending.version, st.pending.after_seq) == (1, 400)
        await _feed(agent, fake_redis, candles, range(400, 460))
        msgs = await _messages(ps)
        status = [(m.status, m.trigger, m.version) for m in msgs
                  if isinstance(m, ModelRetrainStatus)]
        assert status[:4] == [("started", "initial", 0), ("finished", "initial", 1),
                              ("adopted", "initial", 1), ("started", "hit_rate", 0)]
        assert status[4:6] == [("finished", "hit_rate", 2), ("adopted", "hit_rate", 2)]
        metrics = [m for m in msgs if isinstance(m, ModelMetricsReported)]
        assert metrics and all(m.symbol == "ETH/BTC" and m.threshold == 0.99 for m in metrics)
        assert any(m.version == 1 and m.predictions > 0 and m.hit_rate is not None
                   for m in metrics)

        st = parse_ml_state(await fake_redis.get(ml_state_key(AGENT)))
        v2_from = st.active.since_seq
        assert st.active.version == 2 and st.active.trigger == "hit_rate"
        store = ModelStore(model_root(settings), "ETH/BTC")
        meta2 = store.meta(2)
        assert meta2.trigger_seq == v2_from - 1 and meta2.bars == 400  # train_bars held
        assert meta2.data_end == int(candles.time[v2_from - 2])  # the bar that triggered it
        db = Store(make_engine(settings.db_url()))
        switched = db.audit(action="ml_model_switched")
        assert [a["subject_id"] for a in switched] == ["ETH/BTC:ml_classifier:v1",
                                                       "ETH/BTC:ml_classifier:v2"]
        assert f"v1 -> v2 from bar seq {v2_from}" in switched[1]["reason"]

        sigs = {s["bar_seq"]: s for s in db.signals("ETH/BTC")}
        assert sigs and min(sigs) >= 401  # the first model is used from the bar after 400
        ref1 = _reference(store, 1, candles, v2_from - 1)
        assert {q: (s["side"], s["confidence"]) for q, s in sigs.items() if q < v2_from} == \
            {q: v for q, v in ref1.items() if q >= 401}
        ref2 = _reference(store, 2, candles, 460)
        after = {q: (s["side"], s["confidence"]) for q, s in sigs.items() if q >= v2_from}
        assert after == {q: v for q, v in ref2.items() if q >= v2_from}
        assert all("model v2" in s["reason"] for q, s in sigs.items() if q >= v2_from)

        # restart: the new process finds version 2 and the monitor where it was
        agent2 = await _agent(settings, fake_redis)
        assert agent2.models.state.active.version == 2 and agent2.models.model.version == 2
        assert agent2.models.state.monitor == st.monitor
        await _feed(agent2, fake_redis, candles, range(460, 465))
        st2 = parse_ml_state(await fake_redis.get(ml_state_key(AGENT)))
        assert (st2.active.version, st2.active.since_seq) == (2, v2_from)
        later = {s["bar_seq"]: (s["side"], s["confidence"])
                 for s in db.signals("ETH/BTC") if s["bar_seq"] > 460}
        assert later == {q: v for q, v in _reference(store, 2, candles, 465).items() if q > 460}
        # the monitor carried over: v2's hit rate trips again within 30 resolved calls of
        # its adoption, long before a monitor reset at the restart could (bar 461 + 3 + 29)
        await _feed(agent2, fake_redis, candles, range(465, 480))
        assert store.versions() == [1, 2, 3] and store.meta(3).trigger_seq < 461 + 3 + 29
        db.close()
        await ps.aclose()

    asyncio.run(go())


def test_schedule_retrains_every_n_bars(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        settings = _settings(tmp_path, hit_rate_threshold=0.0, retrain_every_bars=25)
        candles = eth_candles(settings)
        agent = await _agent(settings, fake_redis)
        await publish_bars(fake_redis, candles, range(500), 1)
        await drain(agent)
        store = ModelStore(model_root(settings), "ETH/BTC")
        # initial at bar 400, adopted at 401 (1 bar since), so due at 425, 450, ...
        assert store.versions() == [1, 2, 3, 4, 5]
        assert [(m.trigger, m.trigger_seq) for m in map(store.meta, store.versions())] == [
            ("initial", 400), ("schedule", 425), ("schedule", 450), ("schedule", 475),
            ("schedule", 500)]
        st = parse_ml_state(await fake_redis.get(ml_state_key(AGENT)))
        assert (st.active.version, st.active.since_seq) == (4, 476)
        assert (st.pending.version, st.pending.after_seq) == (5, 500)

    asyncio.run(go())


def test_a_corrupt_model_is_reported_and_replaced(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        settings = _settings(tmp_path, hit_rate_threshold=0.0)
        candles = eth_candles(settings)
        store = ModelStore(model_root(settings), "ETH/BTC")
        from backend.ml.train import train_model

        store.save(train_model(candles, symbol="ETH/BTC", horizon=3, end=600))
        with store.path(1).open("ab") as f:
            f.write(b"tampered")
        agent = await _agent(settings, fake_redis)
        assert agent.models.model is None and "SHA-256" in agent.last_error
        await _feed(agent, fake_redis, candles, range(0, 402))
        st = parse_ml_state(await fake_redis.get(ml_state_key(AGENT)))
        assert st.active.version == 2 and st.active.trigger == "initial"

    asyncio.run(go())


def test_a_stored_model_trained_on_later_bars_is_not_used(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    """A replay started again with the models of a previous run would look ahead: the model
    is dropped at the first bar it does not precede, and a new one trained."""
    async def go() -> None:
        settings = _settings(tmp_path, hit_rate_threshold=0.0)
        candles = eth_candles(settings)
        store = ModelStore(model_root(settings), "ETH/BTC")
        from backend.ml.train import train_model

        store.save(train_model(candles, symbol="ETH/BTC", horizon=3))  # all 5760 bars
        agent = await _agent(settings, fake_redis)
        assert agent.models.model.version == 1  # loaded, not yet checked against a bar
        await publish_bars(fake_redis, candles, range(430), 1)
        await drain(agent)
        assert "was trained on bars up to" in agent.last_error
        st = parse_ml_state(await fake_redis.get(ml_state_key(AGENT)))
        assert (st.active.version, st.active.since_seq, st.active.trigger) == (2, 401, "initial")
        db = Store(make_engine(settings.db_url()))
        seqs = [s["bar_seq"] for s in db.signals("ETH/BTC")]
        assert seqs and min(seqs) >= 401
        db.close()

    asyncio.run(go())


def test_a_regime_gated_ml_classifier_gets_its_models_too(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    """The hooks see through the regime gate (``inner``): same models, gated signals."""
    async def go() -> None:
        settings = _settings(tmp_path, hit_rate_threshold=0.0)
        settings = settings.model_copy(update={"default_strategy": settings.default_strategy
                                                .model_copy(update={"regimes": ["ranging"]})})
        candles = eth_candles(settings)
        agent = await _agent(settings, fake_redis)
        await publish_bars(fake_redis, candles, range(700), 1)
        await drain(agent)
        st = parse_ml_state(await fake_redis.get(ml_state_key(AGENT)))
        assert (st.active.version, st.active.since_seq) == (1, 401)
        gated = agent.runner.strategy
        assert type(gated).__name__ == "RegimeGated"
        assert gated.inner.models == {"*": agent.models.model}  # type: ignore[attr-defined]
        db = Store(make_engine(settings.db_url()))
        sigs = db.signals("ETH/BTC")
        assert sigs and all(s["regime"].startswith("ranging") for s in sigs)
        ungated = _reference(ModelStore(model_root(settings), "ETH/BTC"), 1, candles, 700)
        assert {s["bar_seq"] for s in sigs} < {q for q in ungated if q >= 401}
        db.close()

    asyncio.run(go())
