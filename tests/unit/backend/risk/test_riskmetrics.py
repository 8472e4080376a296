"""VaR / CVaR (historical and normal) and exposure figures: hand-computable cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from backend.messages import PortfolioMarked, PositionSnapshot
from backend.rest.models import RiskFigures
from backend.risk.metrics import (
    bar_returns,
    historical_var_cvar,
    parametric_var_cvar,
    risk_figures,
)

# 100 returns -1.00%, -0.98%, ..., +0.98% (shuffled: the estimators must sort)
GRID = -0.01 + 0.0002 * np.arange(100)
SHUFFLED = np.random.default_rng(7).permutation(GRID)


def curve_from(returns: np.ndarray, start: float = 1000.0) -> np.ndarray:
    return start * np.concatenate([[1.0], np.cumprod(1.0 + returns)])


def mark(equity: float, positions: dict[str, PositionSnapshot]) -> PortfolioMarked:
    return PortfolioMarked(
        source="execution", bar_seq=5, bar_time=0, cash=equity, equity=equity,
        exposure=0.0, day=0, day_start_equity=equity, positions=positions,
    )


# ---------------------------------------------------------------- bar returns
def test_bar_returns_simple_and_drops_non_finite() -> None:
    r = bar_returns([100.0, 110.0, 99.0])
    assert r.shape == (2,)
    assert r == pytest.approx([0.1, -0.1])
    # a NaN point and a division by a 0 point give non-finite returns: dropped
    assert bar_returns([100.0, math.nan, 100.0, 0.0, 50.0, 55.0]) == pytest.approx([-1.0, 0.1])
    assert bar_returns([]).shape == (0,)
    assert bar_returns([5.0]).shape == (0,)


# ---------------------------------------------------------------- historical
def test_historical_grid_95() -> None:
    # h = 99 * 0.05 = 4.95: 95% from x4 = -0.92% to x5 = -0.90%; CVaR = mean of x0..x4
    var, cvar = historical_var_cvar(SHUFFLED, 0.95)
    assert var == pytest.approx(0.00901, abs=1e-12)
    assert cvar == pytest.approx(0.0096, abs=1e-12)


def test_historical_grid_99() -> None:
    # h = 0.99: between x0 = -1% and x1 = -0.98%; CVaR = the worst return alone
    var, cvar = historical_var_cvar(SHUFFLED, 0.99)
    assert var == pytest.approx(0.009802, abs=1e-12)
    assert cvar == pytest.approx(0.01, abs=1e-12)


def test_historical_matches_numpy_definition() -> None:
    r = np.random.default_rng(1).standard_t(3, size=257) * 0.01
    for level in (0.9, 0.95, 0.975, 0.99):
        var, cvar = historical_var_cvar(r, level)
        q = np.percentile(r, 100 * (1 - level))
        k = int(math.floor((len(r) - 1) * round(1 - level, 12))) + 1
        assert var == pytest.approx(-q, rel=1e-12)
        assert cvar == pytest.approx(-np.sort(r)[:k].mean(), rel=1e-12)
        assert cvar >= var


def test_historical_level_090_tail_is_not_off_by_one() -> None:
    # 1 - 0.9 = 0.09999999999999998 in floating point; 10 * that must still count as 1
    r = np.arange(11, dtype=float) / 100 - 0.05  # -5% .. +5%
    var, cvar = historical_var_cvar(r, 0.9, min_obs=1)
    assert var == pytest.approx(0.04)
    assert cvar == pytest.approx(0.045)  # mean of -5% and -4%


def test_historical_ignores_nan_and_needs_min_obs() -> None:
    with_nan = np.concatenate([SHUFFLED, [math.nan, math.inf, -math.inf]])
    assert historical_var_cvar(with_nan, 0.95) == historical_var_cvar(SHUFFLED, 0.95)
    assert historical_var_cvar(GRID[:29], 0.95) == (None, None)
    assert historical_var_cvar(GRID[:30], 0.95)[0] is not None
    assert historical_var_cvar([], 0.95) == (None, None)
    assert historical_var_cvar([math.nan] * 50, 0.95) == (None, None)
    assert historical_var_cvar(GRID[:5], 0.95, min_obs=5)[0] is not None
    assert historical_var_cvar(GRID, 1.0) == (None, None)


def test_rising_curve_gives_negative_var() -> None:
    var, cvar = historical_var_cvar(np.full(40, 0.001), 0.95)
    assert var == pytest.approx(-0.001) and cvar == pytest.approx(-0.001)


# ---------------------------------------------------------------- parametric
@pytest.mark.parametrize("level", [0.95, 0.99])
def test_parametric_matches_scipy(level: float) -> None:
    r = np.random.default_rng(3).normal(0.0005, 0.01, size=200)
    mu, sigma = r.mean(), r.std(ddof=1)
    var, cvar = parametric_var_cvar(r, level)
    # VaR: minus the (1 - level) quantile of N(mu, sigma^2)
    assert var == pytest.approx(-stats.norm.ppf(1 - level, loc=mu, scale=sigma), rel=1e-10)
    # ES: minus the mean of N(mu, sigma^2) below that quantile, by numerical integration
    q = stats.norm.ppf(1 - level, loc=mu, scale=sigma)
    tail_mean = stats.norm.expect(lambda x: x, loc=mu, scale=sigma, ub=q, conditional=True)
    assert cvar == pytest.approx(-tail_mean, rel=1e-7)
    # and the closed form of the brief
    z = stats.norm.ppf(level)
    assert cvar == pytest.approx(-(mu - sigma * stats.norm.pdf(z) / (1 - level)), rel=1e-12)
    assert cvar > var > 0


def test_parametric_close_to_historical_on_a_large_normal_sample() -> None:
    r = np.random.default_rng(42).normal(0.0, 0.01, size=200_000)
    for level in (0.95, 0.99):
        hv, hc = historical_var_cvar(r, level)
        pv, pc = parametric_var_cvar(r, level)
        assert pv == pytest.approx(hv, rel=0.02)
        assert pc == pytest.approx(hc, rel=0.02)
    # and both close to the true N(0, 0.01^2) figures
    assert pv == pytest.approx(0.01 * stats.norm.ppf(0.99), rel=0.02)


def test_parametric_flat_short_and_nan() -> None:
    assert parametric_var_cvar(np.zeros(50), 0.99) == (0.0, 0.0)
    assert parametric_var_cvar(np.zeros(29), 0.99) == (None, None)
    assert parametric_var_cvar([0.01], 0.99, min_obs=1) == (None, None)  # needs sigma
    assert parametric_var_cvar([math.nan] * 40, 0.95) == (None, None)
    assert parametric_var_cvar(GRID, 0.0) == (None, None)


# ---------------------------------------------------------------- risk_figures
def test_risk_figures_exposure_from_mark() -> None:
    m = mark(1000.0, {
        "ETH/BTC": PositionSnapshot(quantity=2.0, avg_price=0.05, mark=100.0),
        "BTC/USDT": PositionSnapshot(quantity=-0.5, avg_price=200.0, mark=300.0),
    })
    fig = risk_figures(curve_from(SHUFFLED), m)
    assert isinstance(fig, RiskFigures)
    assert fig.equity == 1000.0
    assert fig.by_symbol["ETH/BTC"].notional == pytest.approx(200.0)
    assert fig.by_symbol["ETH/BTC"].exposure_pct == pytest.approx(0.2)
    assert fig.by_symbol["BTC/USDT"].quantity == -0.5
    assert fig.by_symbol["BTC/USDT"].notional == pytest.approx(150.0)
    assert fig.by_symbol["BTC/USDT"].exposure_pct == pytest.approx(0.15)
    assert fig.exposure == pytest.approx(350.0)
    assert fig.exposure_pct == pytest.approx(0.35)


def test_risk_figures_estimates() -> None:
    m = mark(2000.0, {})
    fig = risk_figures(curve_from(SHUFFLED), m)
    assert fig.observations == 100
    assert [(e.method, e.level) for e in fig.estimates] == [
        ("historical", 0.95), ("historical", 0.99), ("parametric", 0.95), ("parametric", 0.99),
    ]
    h95 = fig.estimates[0]
    assert h95.var == pytest.approx(0.00901) and h95.cvar == pytest.approx(0.0096)
    assert h95.var_quote == pytest.approx(0.00901 * 2000.0)  # the mark's equity, not the curve's
    assert h95.cvar_quote == pytest.approx(0.0096 * 2000.0)
    p99 = fig.estimates[3]
    assert (p99.var, p99.cvar) == pytest.approx(parametric_var_cvar(SHUFFLED, 0.99), rel=1e-9)
    assert fig.exposure == 0.0 and fig.by_symbol == {} and fig.exposure_pct == 0.0


def test_risk_figures_without_mark_uses_last_curve_point() -> None:
    curve = curve_from(SHUFFLED)
    fig = risk_figures(list(curve) + [math.nan], None, levels=(0.95,))
    assert fig.equity == pytest.approx(curve[-1])
    assert fig.observations == 100
    assert fig.exposure == 0.0 and fig.by_symbol == {}
    assert fig.estimates[0].var_quote == pytest.approx(0.00901 * curve[-1])


@pytest.mark.parametrize(("curve", "n"), [
    ([], 0), ([1000.0], 0), ([math.nan] * 10, 0), ([1000.0] * 3, 2), ("garbage", 0),
])
def test_risk_figures_never_raises_on_short_input(curve: list[float], n: int) -> None:
    fig = risk_figures(curve, None)
    assert fig.observations == n
    assert len(fig.estimates) == 4
    assert all(e.var is None and e.cvar is None and e.var_quote is None for e in fig.estimates)
    assert fig.exposure == 0.0


def test_risk_figures_flat_curve_is_zero_risk() -> None:
    fig = risk_figures([500.0] * 60, mark(500.0, {}))
    assert fig.observations == 59
    for e in fig.estimates:
        assert (e.var, e.cvar, e.var_quote, e.cvar_quote) == (0.0, 0.0, 0.0, 0.0)
        assert math.copysign(1.0, e.var) == 1.0  # not -0.0


def test_risk_figures_zero_or_negative_equity_has_no_pct() -> None:
    m = mark(0.0, {"ETH/BTC": PositionSnapshot(quantity=1.0, avg_price=1.0, mark=2.0)})
    fig = risk_figures([], m)
    assert fig.exposure == 2.0 and fig.exposure_pct is None
    assert fig.by_symbol["ETH/BTC"].exposure_pct is None
    fig.model_dump_json()  # serialisable (no NaN)
