"""The proposal rule and the running parameters' baseline (backend.optimizer.proposal)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.marketdata.candles import load_dir
from backend.optimizer.models import OptimizeConfig
from backend.optimizer.proposal import (
    baseline_scores,
    candles_from_bars,
    judge,
    make_request,
    proposal_key,
)
from backend.optimizer.runner import optimize
from backend.settings import OptimizerAgentConfig, Settings


@pytest.mark.parametrize(("score", "baseline", "overfit", "reject", "same", "propose", "why"), [
    (1.0, 0.5, False, True, False, True, "beats"),
    (0.55, 0.5, False, True, False, False, "does not beat"),  # within the margin 0.1
    (0.6, 0.5, False, True, False, False, "does not beat"),  # not *more* than the margin
    (0.3, None, False, True, False, True, "undefined"),  # any defined score beats none
    (0.3, -math.inf, False, True, False, True, "undefined"),
    (None, 0.5, False, True, False, False, "no defined out-of-sample"),
    (-math.inf, None, False, True, False, False, "no defined out-of-sample"),
    (2.0, 0.5, True, True, False, False, "overfit"),
    (2.0, 0.5, True, False, False, True, "beats"),  # overfit allowed by configuration
    (2.0, 0.5, False, True, True, False, "running ones"),
])
def test_judge(score, baseline, overfit, reject, same, propose, why) -> None:  # noqa: ANN001
    v = judge(score, baseline, margin=0.1, overfit=overfit, reject_overfit=reject,
              same_params=same)
    assert v.propose is propose and why in v.reason
    assert v.baseline is None or math.isfinite(v.baseline)


@pytest.fixture(scope="module")
def eth():  # noqa: ANN201
    return load_dir(Settings().data_dir, ["ETH/BTC"])["ETH/BTC"].slice(0, 900)


@pytest.mark.parametrize("sizing", ["all-in", "risk"])
def test_baseline_scores_the_same_windows_the_same_way(eth, sizing: str) -> None:  # noqa: ANN001
    """The running parameters get exactly the score the run's own best got, when they are
    that best: same windows, objective, cash, commission and sizing."""
    cfg = OptimizeConfig(strategy="sma_cross", population=6, generations=1, walk_forward=2,
                         seed=1, sizing=sizing, commission=0.001)
    run = optimize({"ETH/BTC": eth}, cfg, settings=Settings())
    for k, fold in enumerate(run.folds):
        mean, per_fold = baseline_scores(run, {"ETH/BTC": eth}, "sma_cross", fold.best_params,
                                         settings=Settings())
        oos = fold.out_of_sample
        assert per_fold[k] == (oos if oos is not None and math.isfinite(oos) else None)
        assert len(per_fold) == 2
    if run.folds[0].best_params == run.folds[1].best_params:
        assert mean == run.mean_out_of_sample


def test_baseline_of_unusable_params_is_undefined(eth) -> None:  # noqa: ANN001
    run = optimize({"ETH/BTC": eth}, OptimizeConfig(strategy="sma_cross", population=4,
                                                    generations=0, walk_forward=1))
    assert baseline_scores(run, [eth], "sma_cross", {"fast": 50, "slow": 20}) == (None, [None])


def test_candles_from_bars_sorts_by_time() -> None:
    c = candles_from_bars("ETH/BTC", {20: (2, 3, 1, 2.5, 9), 10: (1, 2, 0.5, 1.5, 8)})
    assert c.symbol == "ETH/BTC" and c.time.tolist() == [10, 20]
    assert np.array_equal(c.close, [1.5, 2.5]) and c.time.dtype == np.int64


def test_make_request_takes_the_configuration_and_overrides() -> None:
    s = Settings(optimizer=OptimizerAgentConfig(population=12, walk_forward=4, objective="sortino"))
    req = make_request(s, "ETH/BTC", "momentum", run_id="r1", until_seq=7,
                       requested_by="api@10.0.0.1", reason="why", population=None,
                       generations=3)
    assert (req.id, req.run_id, req.source, req.correlation_id) == ("r1", "r1", "api", "r1")
    assert (req.population, req.generations, req.walk_forward, req.objective) == (
        12, 3, 4, "sortino")
    assert (req.strategy, req.until_seq, req.max_bars) == ("momentum", 7, 5000)


def test_proposal_keys_fit_the_state_table() -> None:
    assert proposal_key("abc") == "optimizer_proposal:abc"
    long_key = proposal_key("x" * 128)
    assert len(long_key) <= 64 and long_key == proposal_key("x" * 128)
