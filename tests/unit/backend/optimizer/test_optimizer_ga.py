"""The GA: seeded reproducibility, selection pressure, elitism, statistics, objectives."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from backend.backtest import run_backtest
from backend.marketdata.candles import Candles, load_candles
from backend.optimizer.fitness import GA_OBJECTIVES, Scorer
from backend.optimizer.genome import Genome
from backend.optimizer.models import OptimizeConfig
from backend.optimizer.parallel import InProcess
from backend.optimizer.runner import fitness_context, optimize

ROOT = Path(__file__).resolve().parents[4]
ETH = ROOT / "data" / "sample" / "ETH_BTC-5m.csv"


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_candles(ETH).slice(0, 2000)


def cfg(**kw) -> OptimizeConfig:
    base = {"strategy": "sma_cross", "population": 12, "generations": 5, "seed": 1,
            "commission": 0.001}
    return OptimizeConfig(**{**base, **kw})


def test_same_seed_same_result_and_the_global_random_is_untouched(eth: Candles) -> None:
    random.seed(123)
    before = random.random()
    random.seed(123)
    a = optimize([eth], cfg())
    assert random.random() == before  # the run has its own generator
    random.seed(999)  # a different global state changes nothing
    b = optimize([eth], cfg())
    assert a.outcome() == b.outcome()
    hof_a = [(e.params, e.score) for e in a.folds[0].hall_of_fame]
    assert hof_a == [(e.params, e.score) for e in b.folds[0].hall_of_fame]
    assert len(hof_a) == 5 and len({tuple(p.values()) for p, _ in hof_a}) == 5
    assert a.folds[0].generations == b.folds[0].generations
    assert a.run_id != b.run_id


def test_different_seed_different_search(eth: Candles) -> None:
    a, b = optimize([eth], cfg(seed=1)), optimize([eth], cfg(seed=2))
    assert a.folds[0].hall_of_fame != b.folds[0].hall_of_fame
    assert a.folds[0].generations[0] != b.folds[0].generations[0]


def test_ga_beats_random_parameter_sets(eth: Candles) -> None:
    c = cfg(seed_defaults=False, generations=6)
    genome = Genome("sma_cross")
    ctx = fitness_context([eth], c)
    scorer, window = Scorer(ctx), ctx.full_window()
    rng = random.Random(99)
    rand = np.array([scorer.score(window, genome.decode(genome.random(rng)))
                     for _ in range(60)])
    rand = rand[np.isfinite(rand)]
    med, q75, q90 = np.percentile(rand, [50, 75, 90])
    res = optimize([eth], c)
    last = res.folds[0].generations[-1]
    assert res.in_sample > q90 > med
    assert last.mean > q75  # the whole final population, not one lucky draw
    # the reported best is what the evaluator says of those parameters
    assert scorer.score(window, res.best_params) == res.in_sample


def test_elitism_keeps_the_best_and_stats_are_consistent(eth: Candles) -> None:
    res = optimize([eth], cfg(generations=6, mut_prob=0.9, cx_prob=0.9))
    gens = res.folds[0].generations
    assert [g.generation for g in gens] == list(range(7))
    bests = [g.best for g in gens]
    assert bests == sorted(bests)  # elitism: the best never gets lost
    assert bests[-1] == res.in_sample == res.folds[0].hall_of_fame[0].score
    for g in gens:
        assert g.mean is not None and g.std is not None and g.std >= 0
        assert g.mean <= g.best and g.invalid >= 0
    evals = [g.evaluations for g in gens]
    assert evals == sorted(evals) and evals[-1] == res.evaluations <= 12 * 7


def test_defaults_seed_the_population(eth: Candles) -> None:
    g = Genome("sma_cross")
    defaults = g.decode(g.defaults())
    for seeded in (True, False):
        res = optimize([eth], cfg(population=4, generations=0, hof_size=4,
                                  seed_defaults=seeded))
        members = [e.params for e in res.folds[0].hall_of_fame]  # the whole population
        assert len(members) == 4
        assert (defaults in members) is seeded


@pytest.mark.parametrize("sizing", ["all-in", "risk"])
@pytest.mark.parametrize("objective", GA_OBJECTIVES)
def test_objectives_match_the_backtest_statistics(eth: Candles, objective: str,
                                                  sizing: str) -> None:
    params = {"fast": 12, "slow": 40}
    ctx = fitness_context([eth], cfg(objective=objective, cash=10.0, sizing=sizing))
    got = InProcess(ctx).map(ctx.full_window(), [params])[0]
    st = run_backtest({eth.symbol: eth}, "sma_cross", params, sizing=sizing,  # type: ignore[arg-type]
                      cash=10.0, commission=0.001).stats
    want = {"sharpe": st.sharpe, "sortino": st.sortino, "calmar": st.calmar,
            "return_dd": st.total_return / st.max_drawdown}[objective]
    assert got == pytest.approx(want, rel=1e-9)


def test_infeasible_and_undefined_scores_are_minus_infinity(eth: Candles) -> None:
    ctx = fitness_context([eth], cfg())
    s = Scorer(ctx)
    assert s.score(ctx.full_window(), {"fast": 50, "slow": 20}) == float("-inf")
    tiny = ctx.window(int(eth.time[0]), int(eth.time[1]))  # one bar: nothing to score
    assert s.score(tiny, {}) == float("-inf")


def test_bad_configuration_is_refused(eth: Candles) -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        optimize([eth], cfg(strategy="nope"))
    with pytest.raises(ValueError):
        cfg(objective="luck")
    with pytest.raises(ValueError):
        cfg(population=2)
    with pytest.raises(ValueError, match="out of range"):
        optimize([eth], cfg(fixed={"slow": 1}))


def test_momentum_through_generate_and_two_symbols(eth: Candles) -> None:
    ltc = load_candles(ROOT / "data" / "sample" / "LTC_BTC-5m.csv").slice(0, 2000)
    c = cfg(strategy="momentum", population=6, generations=1, objective="return_dd")
    res = optimize({eth.symbol: eth, ltc.symbol: ltc}, c)
    assert res.symbols == ["ETH/BTC", "LTC/BTC"]
    assert set(res.best_params) == {"lookback", "threshold", "volume_window", "volume_factor",
                                    "fast_ma", "slow_ma", "atr_period", "stop_atr",
                                    "reward_risk"}
    ctx = fitness_context([eth, ltc], c)
    s = Scorer(ctx)
    one = [Scorer(fitness_context([x], c)) for x in (eth, ltc)]
    both = s.score(ctx.full_window(), res.best_params)
    each = [o.score(o.ctx.full_window(), res.best_params) for o in one]
    assert both == pytest.approx(sum(each) / 2)  # fitness = mean of the symbols' scores


def test_risk_sizing_scores_through_the_backtester(eth: Candles) -> None:
    from backend.settings import Settings

    s = Settings()
    s = s.model_copy(update={"risk": s.risk.model_copy(update={"min_confidence": 0.0})})
    bars = eth.slice(0, 400)
    c = cfg(sizing="risk", objective="return_dd", population=4, generations=0)
    ctx = fitness_context([bars], c, settings=s)
    params = {"fast": 5, "slow": 20}
    got = Scorer(ctx).score(ctx.full_window(), params)
    st = run_backtest({bars.symbol: bars}, "sma_cross", params, sizing="risk", cash=c.cash,
                      commission=c.commission, settings=s).stats
    assert st.trades > 0
    assert got == pytest.approx(st.total_return / st.max_drawdown, rel=1e-12)
    res = optimize([bars], c, settings=s)
    assert res.config.sizing == "risk" and res.evaluations == 4
