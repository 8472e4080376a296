"""ml_classifier in the live mesh (real redis-server, the strategy agent as a process):
initial model, retrain when the live hit rate trips, adoption at the next bar, restart keeps
the version.  Statuses on ``retrain_status``, metrics on ``model_metrics`` (pub/sub)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from backend import channels
from backend.bus import Bus
from backend.marketdata.candles import Candles, load_dir
from backend.mesh.pipeline import bar_message
from backend.messages import ModelMetricsReported, ModelRetrainStatus, decode
from backend.ml.live import ml_state_key, parse_ml_state
from backend.ml.store import ModelStore, model_root
from backend.persistence import Store, make_engine
from backend.settings import MlConfig, StrategyConfig
from backend.strategies.ml_classifier import FittedMlClassifier
from backend.strategies.runner import StrategyRunner
from tests.support.agentproc import agent_env, make_settings, running, start_agent, stop
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration
AGENT = "strategy:ETHBTC"
PARAMS = {"horizon": 3, "train_bars": 400}


def _publish(r: redis.Redis, candles: Candles, rows: range) -> None:
    bus = Bus(r, "market_data")  # type: ignore[arg-type]
    for i in rows:
        pipe = r.pipeline(transaction=True)
        bus.stage(pipe, channels.MARKET_DATA, bar_message(candles, i, i + 1, "5m"))
        pipe.set(channels.REPLAY_CURSOR_KEY, i + 1)
        pipe.execute()


def _caught_up(r: redis.Redis) -> bool:
    info = r.xinfo_stream(channels.MARKET_DATA)
    for g in r.xinfo_groups(channels.MARKET_DATA):
        if g["name"].decode() == AGENT:
            return not g["pending"] and g["last-delivered-id"] == info["last-generated-id"]
    return False


def _drain(ps, into: list) -> list:  # noqa: ANN001
    while (m := ps.get_message(timeout=0.01)) is not None:
        if m["type"] == "message":
            into.append(decode(m["data"]))
    return into


def _reference(store: ModelStore, version: int, candles: Candles, n: int) -> dict[int, str]:
    runner, out = StrategyRunner(FittedMlClassifier(store.load(version)), PARAMS), {}
    for i in range(n):
        p = runner.on_bar(int(candles.time[i]), candles.open[i], candles.high[i],
                          candles.low[i], candles.close[i], candles.volume[i])
        if p is not None:
            out[i + 1] = "BUY" if p.side > 0 else "SELL"
    return out


def test_live_retrain_on_hit_rate_adopts_next_bar_and_survives_restart(
        redis_url: str, tmp_path: Path) -> None:
    ml = MlConfig(min_train_bars=400, hit_rate_threshold=0.99, min_predictions=30,
                  hit_rate_window=50, metrics_every_bars=10, model_dir=str(tmp_path / "models"))
    settings = make_settings(tmp_path, redis_url, symbols=["ETH/BTC"], ml=ml,
                             default_strategy=StrategyConfig(name="ml_classifier",
                                                             params=PARAMS))
    candles = load_dir(settings.data_dir, ["ETH/BTC"])["ETH/BTC"]
    store = ModelStore(model_root(settings), "ETH/BTC")
    r = redis.Redis.from_url(redis_url)
    ps = r.pubsub()
    ps.subscribe(channels.RETRAIN_STATUS, channels.MODEL_METRICS)
    env = agent_env(settings, tmp_path)
    proc = start_agent("strategy", env, tmp_path, symbol="ETH/BTC")
    db = Store(make_engine(settings.db_url()))
    msgs: list = []
    try:
        eventually(lambda: running(r, AGENT), timeout=60, message="strategy agent not running")
        _publish(r, candles, range(450))
        eventually(lambda: _caught_up(r), timeout=120, message="bars not consumed")
        st = parse_ml_state(r.get(ml_state_key(AGENT)))
        assert st.active.version == 2 and st.active.trigger == "hit_rate"
        v2_from = st.active.since_seq
        statuses = eventually(lambda: [
            (m.status, m.trigger, m.version) for m in _drain(ps, msgs)
            if isinstance(m, ModelRetrainStatus)][:6], timeout=10)
        assert statuses == [
            ("started", "initial", 0), ("finished", "initial", 1), ("adopted", "initial", 1),
            ("started", "hit_rate", 0), ("finished", "hit_rate", 2), ("adopted", "hit_rate", 2)]
        finished = [m for m in msgs if isinstance(m, ModelRetrainStatus)
                    and m.status == "finished"]
        assert finished[1].bars == 400 and 0 <= finished[1].cv_score <= 1
        assert finished[1].data_end == int(candles.time[v2_from - 2])  # trained at v2_from-1
        metrics = [m for m in msgs if isinstance(m, ModelMetricsReported)]
        assert metrics and metrics[-1].window == 50 and metrics[-1].threshold == 0.99
        assert {m.version for m in metrics} <= {1, 2} and 1 in {m.version for m in metrics}

        sigs = {s["bar_seq"]: s for s in db.signals("ETH/BTC")}
        assert min(sigs) > 400  # no signal before the first model
        v2 = {q: s["side"] for q, s in sigs.items() if q >= v2_from}
        assert v2 and v2 == {q: v for q, v in _reference(store, 2, candles, 450).items()
                             if q >= v2_from}
        assert all("model v2" in sigs[q]["reason"] for q in v2)
        assert all("model v1" in s["reason"] for q, s in sigs.items() if q < v2_from)
        switched = db.audit(action="ml_model_switched")
        assert [a["subject_id"] for a in switched][-1] == "ETH/BTC:ml_classifier:v2"

        assert stop(proc) == 0  # restart: same state, same model
        proc = start_agent("strategy", env, tmp_path, symbol="ETH/BTC")
        eventually(lambda: running(r, AGENT), timeout=60, message="not restarted")
        _publish(r, candles, range(450, 460))
        eventually(lambda: _caught_up(r), timeout=60, message="bars not consumed")
        st2 = parse_ml_state(r.get(ml_state_key(AGENT)))
        assert (st2.active.version, st2.active.since_seq) == (2, v2_from)
        assert store.versions() == [1, 2]
        after = eventually(lambda: [m for m in _drain(ps, msgs)
                                    if isinstance(m, ModelMetricsReported)
                                    and m.bar_seq > 450], timeout=10)
        assert all(m.version == 2 for m in after)
        later = {s["bar_seq"]: s["side"] for s in db.signals("ETH/BTC") if s["bar_seq"] > 450}
        assert later == {q: v for q, v in _reference(store, 2, candles, 460).items() if q > 450}
    finally:
        stop(proc)
        db.close()
        ps.close()
        r.close()
