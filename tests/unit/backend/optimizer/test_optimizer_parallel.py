"""Parallel evaluation: a process pool and Dask give the in-process result, bit for bit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend.marketdata.candles import Candles, load_candles
from backend.optimizer.models import OptimizeConfig
from backend.optimizer.parallel import ProcessPool, chunks
from backend.optimizer.runner import fitness_context, optimize

ROOT = Path(__file__).resolve().parents[4]
ETH = ROOT / "data" / "sample" / "ETH_BTC-5m.csv"


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_candles(ETH).slice(0, 2000)


@pytest.fixture(scope="module")
def cfg() -> OptimizeConfig:
    return OptimizeConfig(strategy="sma_cross", population=10, generations=3, seed=11,
                          walk_forward=2, commission=0.001)


@pytest.fixture(scope="module")
def reference(eth: Candles, cfg: OptimizeConfig):
    return optimize([eth], cfg)


def test_chunks_keep_order_and_cover_everything() -> None:
    items = list(range(11))
    for n in (1, 2, 3, 4, 11, 50):
        parts = chunks(items, n)
        assert [x for p in parts for x in p] == items
        assert len(parts) == min(n, 11) and all(parts)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert chunks([], 4) == []


def test_process_pool_gives_the_in_process_result(eth, cfg, reference) -> None:
    res = optimize([eth], cfg.model_copy(update={"workers": 2}))
    assert res.executor == "pool:2"
    assert res.outcome() == reference.outcome()


def test_process_pool_really_uses_other_processes(eth, cfg) -> None:
    ctx = fitness_context([eth], cfg)
    pool = ProcessPool(ctx, 2)
    try:
        pids = set(pool._pool.map(_pid, range(8)))
        scores = pool.map(ctx.full_window(), [{"fast": 5, "slow": 20}, {"fast": 9, "slow": 50}])
    finally:
        pool.close()
    assert os.getpid() not in pids and pids
    assert len(scores) == 2 and scores[0] != scores[1]


def _pid(_: int) -> int:
    return os.getpid()


def test_dask_local_cluster_gives_the_in_process_result(eth, cfg, reference) -> None:
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=2,
                                  dashboard_address=None) as cluster:
        res = optimize([eth], cfg.model_copy(update={"scheduler": cluster.scheduler_address}))
        with distributed.Client(cluster) as client:
            res2 = optimize([eth], cfg, dask_client=client)
            assert client.status == "running"  # a given client is left open
    assert res.executor.startswith("dask:") and res2.executor.startswith("dask:")
    assert res.outcome() == reference.outcome()
    assert res2.outcome() == reference.outcome()
