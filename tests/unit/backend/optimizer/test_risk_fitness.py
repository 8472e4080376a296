"""The optimizer's default fitness is the mesh's trading model, compiled: the kernel's
scores equal those of ``backend.mesh.simulate`` to the bit, and a GA run picks the same
parameters with either."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from backend.marketdata.candles import Candles, load_candles
from backend.optimizer import runner
from backend.optimizer.fitness import FitnessContext, Scorer
from backend.optimizer.models import OptimizeConfig
from backend.settings import Settings

ETH = Path(__file__).resolve().parents[4] / "data" / "sample" / "ETH_BTC-5m.csv"
SETS = [{"fast": 5, "slow": 20}, {"fast": 12, "slow": 40, "stop_atr": 1.0},
        {"fast": 3, "slow": 60, "reward_risk": 4.0}, {"fast": 20, "slow": 25}]


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_candles(ETH).slice(1500, 2300)


def _ctx(eth: Candles, engine: str, objective: str = "sharpe",
         settings: Settings | None = None) -> FitnessContext:
    return FitnessContext(strategy="sma_cross", candles=(eth,), cash=2.0, commission=0.001,
                          objective=objective, settings=settings or Settings(
                              risk={"min_confidence": 0.3, "daily_drawdown_limit": 0.5}),
                          engine=engine)  # type: ignore[arg-type]


def test_risk_is_the_default_sizing() -> None:
    assert FitnessContext(strategy="sma_cross", candles=(load_candles(ETH).slice(0, 10),),
                          cash=1.0, commission=0.0).sizing == "risk"
    assert OptimizeConfig(strategy="sma_cross").sizing == "risk"


@pytest.mark.parametrize("objective", ["sharpe", "return_dd", "calmar"])
def test_kernel_and_python_score_alike_to_the_bit(eth: Candles, objective: str) -> None:
    fast, slow = Scorer(_ctx(eth, "kernel", objective)), Scorer(_ctx(eth, "python", objective))
    assert fast.risk.engine == "kernel" and slow.risk.engine == "python"
    half = fast.ctx.window(int(eth.time[0]), int(eth.time[400]))
    finite = 0
    for window in (fast.ctx.full_window(), half):
        for params in SETS:
            a, b = fast.score(window, params), slow.score(window, params)
            assert a == b or (math.isnan(a) and math.isnan(b)), (params, a, b)
            finite += math.isfinite(a)
    assert finite >= 4  # real scores were compared, not only -inf


def test_the_var_limit_falls_back_to_the_python_model(eth: Candles) -> None:
    ctx = _ctx(eth, "kernel", settings=Settings(risk={"var_limit": 0.2}))
    assert Scorer(ctx).risk.engine == "python"


def test_a_ga_run_picks_the_same_parameters_with_either_engine(
        eth: Candles, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = OptimizeConfig(strategy="sma_cross", population=6, generations=2, seed=3,
                         walk_forward=1, cash=2.0, commission=0.001,
                         fixed={"atr_period": 14, "stop_atr": 2.0, "reward_risk": 2.0})
    settings = Settings(risk={"min_confidence": 0.3, "daily_drawdown_limit": 0.5})
    results = {}
    real = runner.fitness_context
    for engine in ("kernel", "python"):
        def ctx_with(*a, _engine=engine, **kw):  # type: ignore[no-untyped-def]
            return dataclasses.replace(real(*a, **kw), engine=_engine)
        monkeypatch.setattr(runner, "fitness_context", ctx_with)
        results[engine] = runner.optimize([eth], cfg, settings=settings)
    k, p = results["kernel"], results["python"]
    assert k.best_params == p.best_params
    assert [f.in_sample for f in k.folds] == [f.in_sample for f in p.folds]
    assert math.isfinite(k.folds[0].in_sample)
