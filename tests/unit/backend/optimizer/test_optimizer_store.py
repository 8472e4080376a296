"""Optimizer runs in the database and on the bus (fakeredis), as typed messages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import fakeredis.aioredis
import pytest

from backend import channels
from backend.marketdata.candles import Candles, load_candles
from backend.messages import OptimizerFinished, OptimizerProgressed, decode
from backend.optimizer.models import OptimizeConfig
from backend.optimizer.parallel import InProcess
from backend.optimizer.publish import optimize_async
from backend.optimizer.runner import StoreObserver, finished_message, fitness_context, optimize
from backend.persistence import Store

ROOT = Path(__file__).resolve().parents[4]
ETH = ROOT / "data" / "sample" / "ETH_BTC-5m.csv"


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_candles(ETH).slice(0, 1500)


def cfg(**kw) -> OptimizeConfig:
    base = {"strategy": "sma_cross", "population": 6, "generations": 2, "seed": 2,
            "walk_forward": 2, "commission": 0.001}
    return OptimizeConfig(**{**base, **kw})


def test_run_round_trips_through_the_store(tmp_path: Path, eth: Candles) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    res = optimize([eth], cfg(), observers=[StoreObserver(store)])
    (row,) = store.optimizer_runs()
    assert row["id"] == res.run_id and row["status"] == "finished"
    assert row["strategy"] == "sma_cross" and row["objective"] == "sharpe"
    assert row["config"]["seed"] == 2 and row["config"]["walk_forward"] == 2
    assert row["symbols"] == ["ETH/BTC"]
    assert (row["data_start"], row["data_end"]) == (res.data_start, res.data_end)
    assert row["data_start"] == int(eth.time[0])
    assert row["started_ts"] == res.started_ns and row["finished_ts"] == res.finished_ns
    assert row["best_params"] == res.best_params
    assert row["in_sample"] == pytest.approx(res.in_sample)
    assert row["out_of_sample"] == pytest.approx(res.out_of_sample)
    assert row["mean_out_of_sample"] == pytest.approx(res.mean_out_of_sample)
    assert row["overfit"] is res.overfit and row["evaluations"] == res.evaluations
    assert [f["params"] for f in row["folds"]] == [f.best_params for f in res.folds]
    assert [f["overfit"] for f in row["folds"]] == [f.overfit for f in res.folds]
    one = store.optimizer_run(res.run_id)
    gens = one["generations"]
    assert [(g["fold"], g["generation"]) for g in gens] == [
        (f, g) for f in range(2) for g in range(3)]
    want = [g for f in res.folds for g in f.generations]
    assert [g["best"] for g in gens] == pytest.approx([g.best for g in want])
    assert [g["mean"] for g in gens] == pytest.approx([g.mean for g in want])
    assert [g["std"] for g in gens] == pytest.approx([g.std for g in want])
    assert gens[-1]["best_params"] == res.folds[-1].generations[-1].best_params
    # idempotent: a redelivered result or generation changes nothing
    assert store.finish_optimizer_run(finished_message(res)) is False
    obs = StoreObserver(store)
    obs.generation(res, res.folds[0].generations[0])
    assert len(store.optimizer_run(res.run_id)["generations"]) == 6
    assert store.optimizer_run("nope") is None
    store.close()


def test_listing_filters_and_limits(eth: Candles) -> None:
    store = Store("sqlite://")
    ids = [optimize([eth], cfg(walk_forward=0, generations=0, seed=s),
                    observers=[StoreObserver(store)]).run_id for s in range(3)]
    assert [r["id"] for r in store.optimizer_runs()] == ids
    assert [r["id"] for r in store.optimizer_runs(limit=2)] == ids[1:]
    assert store.optimizer_runs(strategy="momentum") == []
    assert store.optimizer_runs()[0]["out_of_sample"] is None
    assert store.optimizer_runs()[0]["overfit"] is None


class Boom(InProcess):
    """Fails on the third batch."""

    calls = 0

    def map(self, window, params):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("worker lost")
        return super().map(window, params)


def test_a_failed_run_is_stored_as_failed(eth: Candles) -> None:
    store = Store("sqlite://")
    c = cfg()
    with pytest.raises(RuntimeError, match="worker lost"):
        optimize([eth], c, executor=Boom(fitness_context([eth], c)),
                 observers=[StoreObserver(store)], run_id="r-failed")
    run = store.optimizer_run("r-failed")
    assert run["status"] == "failed" and "worker lost" in run["error"]
    assert 1 <= len(run["generations"]) < 6  # those before the failure were recorded


async def _collect(eth: Candles, c: OptimizeConfig):
    redis = fakeredis.aioredis.FakeRedis()
    pubsub = redis.pubsub()
    await pubsub.subscribe(channels.RETRAIN_STATUS, channels.MODEL_METRICS)
    res = await optimize_async([eth], c, redis=redis)
    got: list[tuple[str, object]] = []
    for _ in range(200):  # the subscribe confirmations read as None, then 7 messages
        m = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if m is not None:
            got.append((m["channel"].decode(), decode(m["data"])))
            if got[-1][0] == channels.MODEL_METRICS:
                break
    counts = await redis.hgetall("stats:messages")
    await pubsub.aclose()
    await redis.aclose()
    return res, got, counts


def test_progress_and_result_are_published_as_typed_messages(eth: Candles) -> None:
    res, got, counts = asyncio.run(_collect(eth, cfg()))
    progress = [m for ch, m in got if ch == channels.RETRAIN_STATUS]
    results = [m for ch, m in got if ch == channels.MODEL_METRICS]
    assert all(isinstance(m, OptimizerProgressed) for m in progress)
    assert [(m.fold, m.generation) for m in progress] == [(f, g) for f in range(2)
                                                          for g in range(3)]
    assert all(m.run_id == res.run_id and m.folds == 2 and m.generations == 2
               for m in progress)
    assert progress[-1].best == pytest.approx(res.folds[-1].generations[-1].best)
    (fin,) = results
    assert isinstance(fin, OptimizerFinished) and fin.status == "finished"
    assert fin.run_id == res.run_id and fin.best_params == res.best_params
    assert fin.in_sample == pytest.approx(res.in_sample)
    assert fin.out_of_sample == pytest.approx(res.out_of_sample)
    assert fin.overfit is res.overfit
    assert [f.overfit for f in fin.folds] == [f.overfit for f in res.folds]
    assert fin.folds[0].oos_start == res.folds[0].out_of_sample_window.start
    assert got[-1][0] == channels.MODEL_METRICS  # the result comes last
    assert counts == {channels.RETRAIN_STATUS.encode(): b"6",
                      channels.MODEL_METRICS.encode(): b"1"}


def test_undefined_scores_are_published_as_null(eth: Candles) -> None:
    c = cfg(walk_forward=0, generations=0, fixed={"slow": 300}, population=4)
    res = optimize([eth.slice(0, 200)], c)  # slow SMA of 300 bars: never a signal
    msg = finished_message(res)
    assert res.in_sample == float("-inf") and msg.in_sample is None
    assert decode(msg.to_json()) == msg


async def _failed(eth: Candles, c: OptimizeConfig):
    redis = fakeredis.aioredis.FakeRedis()
    pubsub = redis.pubsub()
    await pubsub.subscribe(channels.MODEL_METRICS)
    with pytest.raises(RuntimeError, match="worker lost"):
        await optimize_async([eth], c, redis=redis, executor=Boom(fitness_context([eth], c)))
    msg = None
    for _ in range(50):
        m = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if m is not None:
            msg = decode(m["data"])
            break
    await pubsub.aclose()
    await redis.aclose()
    return msg


def test_a_failed_run_is_published_as_failed(eth: Candles) -> None:
    msg = asyncio.run(_failed(eth, cfg()))
    assert isinstance(msg, OptimizerFinished)
    assert msg.status == "failed" and "worker lost" in msg.error
