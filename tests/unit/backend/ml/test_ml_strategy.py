"""The ``ml_classifier`` strategy: live == backtest with a fixed model, self-training without
look-ahead, confidence mapping, backtester and optimizer (shipped ETH/BTC and LTC/BTC data)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from backend.backtest import run_backtest
from backend.marketdata.candles import Candles, load_dir
from backend.ml.train import train_model
from backend.optimizer.models import OptimizeConfig
from backend.optimizer.runner import optimize
from backend.settings import Settings, StrategyConfig
from backend.strategies.build import build_strategy
from backend.strategies.ml_attach import attach_model, find_ml
from backend.strategies.ml_classifier import (
    CONF_SHARPNESS,
    FittedMlClassifier,
    MlClassifier,
    confidence_of,
)
from backend.strategies.registry import STRATEGIES, get_strategy, strategies_json
from backend.strategies.runner import StrategyRunner


@pytest.fixture(scope="module")
def data() -> dict[str, Candles]:
    return load_dir(Settings().data_dir, ["ETH/BTC", "LTC/BTC"])


@pytest.fixture(scope="module")
def eth(data) -> Candles:  # noqa: ANN001
    return data["ETH/BTC"]


@pytest.fixture(scope="module")
def eth_model(eth: Candles):  # noqa: ANN201
    return train_model(eth, symbol="ETH/BTC", horizon=6, end=2000)


def test_registered_with_declared_parameters() -> None:
    assert STRATEGIES["ml_classifier"] is MlClassifier
    s = get_strategy("ml_classifier")
    assert isinstance(s, MlClassifier) and not s.attached
    names = [p.name for p in MlClassifier.params]
    assert names == ["horizon", "threshold", "train_bars", "C", "atr_period", "stop_atr",
                     "reward_risk"]
    listed = {d["name"]: d for d in json.loads(strategies_json())}["ml_classifier"]
    assert [p["name"] for p in listed["params"]] == names
    with pytest.raises(ValueError, match="threshold"):
        s.resolve_params({"threshold": 0.4})


def test_runner_bar_by_bar_equals_generate_on_the_full_series(eth: Candles, eth_model) -> None:  # noqa: ANN001
    """Live == backtest: with a fixed model every signal is bit-equal."""
    strat = FittedMlClassifier(eth_model)
    full = strat.generate(eth).points()
    runner = StrategyRunner(strat, symbol="ETH/BTC")
    live = []
    for i in range(len(eth)):
        p = runner.on_bar(int(eth.time[i]), eth.open[i], eth.high[i], eth.low[i],
                          eth.close[i], eth.volume[i])
        if p is not None:
            live.append(p)
    assert len(full) > 100
    assert live == full  # index, side, confidence, stop, target, reason: all bit-equal
    assert "model" in full[0].reason and "p_up" in full[0].reason


def test_a_wrapped_strategy_gets_the_model_and_keeps_parity(eth: Candles, eth_model) -> None:  # noqa: ANN001
    built = build_strategy(StrategyConfig(name="ml_classifier"))
    assert find_ml(built) is not None and not find_ml(built).attached
    fitted = attach_model(built, eth_model)
    assert find_ml(fitted).models == {"*": eth_model} and not find_ml(built).attached
    a = fitted.generate(eth.slice(0, 3000))
    b = FittedMlClassifier(eth_model).generate(eth.slice(0, 3000))
    np.testing.assert_array_equal(a.side, b.side)
    with pytest.raises(ValueError, match="not an ml_classifier"):
        attach_model(get_strategy("sma_cross"), eth_model)


def test_models_by_symbol(data, eth_model) -> None:  # noqa: ANN001
    strat = FittedMlClassifier({"ETHBTC": eth_model})
    assert strat.model_for(data["ETH/BTC"]) is eth_model
    with pytest.raises(ValueError, match="no model for symbol 'LTC/BTC'"):
        strat.generate(data["LTC/BTC"])


def test_self_training_uses_the_prefix_only_and_never_looks_ahead(eth: Candles) -> None:
    params = {"train_bars": 1500, "horizon": 6}
    s = MlClassifier()
    f = s.generate(eth, params)
    assert not f.side[:1500].any() and f.side[1500:].any()  # no signal before train_bars
    for t in (1600, 2500, 4000):
        rng = np.random.default_rng(t)
        k = len(eth) - t - 1
        fac = rng.uniform(0.5, 2.0, size=k)
        cols = {c: np.array(getattr(eth, c)) for c in ("open", "high", "low", "close")}
        for c in cols:
            cols[c][t + 1:] *= fac
        g = MlClassifier().generate(replace(eth, **cols), params)
        np.testing.assert_array_equal(g.side[: t + 1], f.side[: t + 1])
        np.testing.assert_array_equal(g.confidence[: t + 1], f.confidence[: t + 1])


def test_fit_prefix_is_the_self_training_mode_with_finite_memory(eth: Candles) -> None:
    params = {"train_bars": 1500}
    a = MlClassifier().generate(eth, params)
    fitted = MlClassifier.fit_prefix({"ETH/BTC": eth}, params)
    b = fitted.generate(eth, params)
    np.testing.assert_array_equal(a.side[1500:], b.side[1500:])
    np.testing.assert_array_equal(a.confidence[1500:], b.confidence[1500:])
    assert fitted.model_for(eth).meta.data_end == int(eth.time[1499])


def test_confidence_mapping_and_how_often_strong_calls_pass(data) -> None:  # noqa: ANN001
    q = np.array([0.5, 0.55, 0.6, 0.61, 0.65, 0.8])
    c = confidence_of(q)
    assert c[0] == 0.5 and np.all(np.diff(c) > 0)
    assert c[2] < 0.85 < c[3]  # the risk gate (0.85) opens at q ~= 0.61
    np.testing.assert_allclose(np.log(c / (1 - c)), CONF_SHARPNESS * np.log(q / (1 - q)))
    # out of sample on the shipped data, some -- not all -- signals pass the 0.85 gate
    for sym, share in (("ETH/BTC", (0.05, 0.5)), ("LTC/BTC", (0.3, 0.9))):
        bars = data[sym]
        f = MlClassifier().generate(bars, {"train_bars": len(bars) * 2 // 3})
        idx = f.indices()
        passed = np.mean(f.confidence[idx] >= 0.85)
        assert share[0] < passed < share[1], (sym, passed)


def test_backtest_all_in_self_training_and_with_a_stored_model(data, eth_model) -> None:  # noqa: ANN001
    eth = {"ETH/BTC": data["ETH/BTC"]}
    res = run_backtest(eth, "ml_classifier", {"train_bars": 2000}, sizing="all-in")
    assert res.strategy == "ml_classifier" and res.stats.trades > 50
    assert all(t.entry_bar >= 2000 for t in res.trades)
    fixed = run_backtest(eth, FittedMlClassifier(eth_model), sizing="all-in")
    # a stored model predicts from its warm-up on (here also inside its training data)
    assert fixed.stats.trades > res.stats.trades and fixed.trades[0].entry_bar < 100


def test_risk_sizing_runs_the_attached_model(data, eth_model) -> None:  # noqa: ANN001
    """The risk replay runs a fitted instance itself (no configuration can hold a model):
    its signals are exactly the model's signals over the same bars."""
    eth = {"ETH/BTC": data["ETH/BTC"].slice(0, 1500)}
    strat = FittedMlClassifier(eth_model)
    res = run_backtest(eth, strat, sizing="risk")
    assert res.strategy == "ml_classifier"
    assert res.extra["signals"] == len(strat.generate(eth["ETH/BTC"]).indices()) > 0



def test_a_tiny_optimizer_run(data) -> None:  # noqa: ANN001
    cfg = OptimizeConfig(strategy="ml_classifier", population=6, generations=1, seed=3,
                         walk_forward=2, fixed={"train_bars": 1000})
    res = optimize({"ETH/BTC": data["ETH/BTC"]}, cfg)
    assert res.status == "finished" and len(res.folds) == 2
    for fold in res.folds:
        assert fold.best_params["train_bars"] == 1000
        MlClassifier.resolve_params(fold.best_params)
        assert np.isfinite(fold.in_sample)


def test_strategies_pickle_for_optimizer_workers(eth: Candles, eth_model) -> None:  # noqa: ANN001
    import pickle

    for strat, params in ((MlClassifier(), {"train_bars": 1000}),
                          (FittedMlClassifier(eth_model), None)):
        before = strat.generate(eth, params)
        again = pickle.loads(pickle.dumps(strat))
        np.testing.assert_array_equal(again.generate(eth, params).side, before.side)
