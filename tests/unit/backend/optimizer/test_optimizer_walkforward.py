"""Walk-forward: folds in time order without overlap, no look-ahead, the overfit rule."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from backend.marketdata.candles import Candles, load_candles
from backend.optimizer.fitness import Scorer
from backend.optimizer.models import OptimizeConfig
from backend.optimizer.runner import fitness_context, optimize
from backend.optimizer.walkforward import is_overfit, mean_score, split_folds

ROOT = Path(__file__).resolve().parents[4]
DATA = ROOT / "data" / "sample"


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_candles(DATA / "ETH_BTC-5m.csv").slice(0, 3000)


def cfg(**kw) -> OptimizeConfig:
    base = {"strategy": "sma_cross", "population": 8, "generations": 2, "seed": 4,
            "commission": 0.001}
    return OptimizeConfig(**{**base, **kw})


def rows(ctx, w) -> set[int]:
    (a, b), = w.rows
    return set(range(a, b))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_rolling_folds_do_not_overlap_and_oos_follows_is(eth: Candles, k: int) -> None:
    ctx = fitness_context([eth], cfg())
    folds = split_folds(ctx, k)
    assert [f.index for f in folds] == list(range(k))
    covered: set[int] = set()
    for f in folds:
        is_rows, oos_rows = rows(ctx, f.in_sample), rows(ctx, f.out_of_sample)
        assert is_rows and oos_rows and not is_rows & oos_rows
        assert f.in_sample.end == f.out_of_sample.start  # OOS is the very next window
        assert max(is_rows) + 1 == min(oos_rows)
        assert not covered & oos_rows  # OOS windows of the folds are disjoint ...
        covered |= oos_rows
    starts = [f.out_of_sample.start for f in folds]
    assert starts == sorted(starts)  # ... and in time order
    sizes = [len(rows(ctx, f.in_sample)) for f in folds]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) + sizes[-1] >= 3000 - 1
    assert folds[-1].out_of_sample.rows[0][1] == 3000  # the last bar is used


def test_anchored_folds_grow_from_the_first_bar(eth: Candles) -> None:
    ctx = fitness_context([eth], cfg())
    folds = split_folds(ctx, 3, anchored=True)
    assert all(f.in_sample.rows[0][0] == 0 for f in folds)
    assert [f.in_sample.end for f in folds] == [f.out_of_sample.start for f in folds]
    assert [f.in_sample.bars() for f in folds] == [750, 1500, 2250]


def test_no_walk_forward_is_one_fit_on_everything(eth: Candles) -> None:
    ctx = fitness_context([eth], cfg())
    (fold,) = split_folds(ctx, 0)
    assert fold.out_of_sample is None and fold.in_sample.rows == ((0, 3000),)


def test_too_few_bars_for_the_folds_is_an_error(eth: Candles) -> None:
    ctx = fitness_context([eth.slice(0, 120)], cfg())
    with pytest.raises(ValueError, match="needs at least 150 bars"):
        split_folds(ctx, 2)
    with pytest.raises(ValueError):
        split_folds(ctx, -1)


def test_two_symbols_share_the_time_windows() -> None:
    ada = load_candles(DATA / "ADA_BTC-5m.csv")  # 5,720 bars: fewer, other times
    ltc = load_candles(DATA / "LTC_BTC-5m.csv")
    ctx = fitness_context([ada, ltc], cfg())
    for f in split_folds(ctx, 2):
        for w in (f.in_sample, f.out_of_sample):
            for c, (a, b) in zip(ctx.candles, w.rows, strict=True):
                assert b > a
                assert w.start <= c.time[a] and c.time[b - 1] < w.end
                assert a == 0 or c.time[a - 1] < w.start


def test_a_window_never_sees_later_bars(eth: Candles) -> None:
    """Scores of a window depend on the bars up to its end only (indicator history
    before the window is allowed, data after it is not)."""
    ctx = fitness_context([eth], cfg())
    fold = split_folds(ctx, 2)[0]
    stop = fold.in_sample.rows[0][1]
    rng = np.random.default_rng(0)
    close = eth.close.copy()
    close[stop:] *= rng.uniform(0.5, 1.5, len(close) - stop)  # scramble the future
    future = Candles(eth.symbol, eth.time, eth.open, eth.high, eth.low, close, eth.volume)
    a = Scorer(ctx)
    b = Scorer(fitness_context([future], cfg()))
    sets = [{"fast": f, "slow": s} for f, s in ((5, 20), (10, 30), (20, 90), (45, 200))]
    assert [a.score(fold.in_sample, p) for p in sets] == [
        b.score(fold.in_sample, p) for p in sets]
    assert [a.score(fold.out_of_sample, p) for p in sets] != [
        b.score(fold.out_of_sample, p) for p in sets]


@pytest.mark.parametrize(("is_", "oos", "flag"), [
    (2.0, 1.5, False),  # kept 75%
    (2.0, 1.0, False),  # exactly half: kept
    (2.0, 0.99, True),  # below half
    (2.0, -0.5, True),  # sign flip
    (2.0, float("-inf"), True),  # no trade out of sample
    (2.0, 3.0, False),
    (-1.0, -3.0, False),  # no edge in sample: nothing to overfit
    (0.0, -1.0, False),
    (float("-inf"), 1.0, False),
    (2.0, None, None),  # no out-of-sample score
])
def test_overfit_rule(is_: float, oos: float | None, flag: bool | None) -> None:
    assert is_overfit(is_, oos) is flag


def test_overfit_ratio_is_configurable() -> None:
    assert is_overfit(2.0, 1.5, ratio=0.8) is True
    assert is_overfit(2.0, 0.1, ratio=0.0) is False


def test_walk_forward_run_reports_is_and_oos_per_fold(eth: Candles) -> None:
    res = optimize([eth], cfg(walk_forward=3))
    ctx = fitness_context([eth], cfg())
    scorer = Scorer(ctx)
    folds = split_folds(ctx, 3)
    assert len(res.folds) == 3
    for f, want in zip(res.folds, folds, strict=True):
        assert (f.in_sample_window.start, f.in_sample_window.end) == (
            want.in_sample.start, want.in_sample.end)
        assert (f.out_of_sample_window.start, f.out_of_sample_window.end) == (
            want.out_of_sample.start, want.out_of_sample.end)
        assert f.in_sample == scorer.score(want.in_sample, f.best_params)
        assert f.out_of_sample == scorer.score(want.out_of_sample, f.best_params)
        assert f.overfit is is_overfit(f.in_sample, f.out_of_sample)
        assert len(f.generations) == 3
    assert res.best_params == res.folds[-1].best_params
    assert res.out_of_sample == res.folds[-1].out_of_sample
    assert res.mean_in_sample == pytest.approx(np.mean([f.in_sample for f in res.folds]))
    assert res.mean_out_of_sample == mean_score([f.out_of_sample for f in res.folds])
    assert res.overfit is is_overfit(res.mean_in_sample, res.mean_out_of_sample)
    plain = optimize([eth], cfg())
    assert plain.out_of_sample is None and plain.overfit is None
    assert math.isfinite(plain.in_sample)
