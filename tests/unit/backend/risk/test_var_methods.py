"""VaR/CVaR methods checked against independent computations.

Parametric against ``scipy.stats.norm`` (quantile and the tail expectation by numerical
integration), historical against the order statistics of a small series by hand, Monte
Carlo against the parametric figure for normal returns (within its sampling error plus
the log-normal's convexity), and the portfolio versions (``backend.risk.portfolio_var``)
against the same computations on hand-built P&L scenarios.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from backend.risk.metrics import (
    historical_var_cvar,
    monte_carlo_var_cvar,
    normal_var_cvar,
    parametric_var_cvar,
)
from backend.risk.portfolio_var import aligned_returns, horizon_returns, position_var

#: 11 returns; sorted: -.05 -.03 -.02 -.015 -.01 0 .005 .01 .02 .03 .04
SMALL = [-0.05, 0.02, -0.01, 0.03, -0.02, 0.01, 0.0, -0.03, 0.04, 0.005, -0.015]
STEP = 300_000_000_000  # 5 minutes in ns


def closes_from(returns, start: float = 1.0) -> np.ndarray:
    return start * np.cumprod(np.r_[1.0, 1.0 + np.asarray(returns, dtype=float)])


def series(returns, start: float = 1.0, t0: int = 0):
    c = closes_from(returns, start)
    return (t0 + np.arange(c.size, dtype=np.int64) * STEP, c)


# ----------------------------------------------------------------- parametric
@pytest.mark.parametrize("level", [0.95, 0.99, 0.975])
@pytest.mark.parametrize(("mu", "sigma"), [(0.0, 0.01), (3e-4, 0.02), (-1e-3, 0.005)])
def test_normal_var_cvar_against_scipy(level: float, mu: float, sigma: float) -> None:
    var, cvar = normal_var_cvar(mu, sigma, level)
    q = norm.ppf(1 - level, loc=mu, scale=sigma)
    assert var == pytest.approx(-q, rel=1e-12)
    # expected shortfall = -E[r | r <= q], integrated numerically by scipy
    tail_mean = norm.expect(lambda x: x, loc=mu, scale=sigma, ub=q) / (1 - level)
    assert cvar == pytest.approx(-tail_mean, rel=1e-7)


def test_parametric_uses_sample_mean_and_std() -> None:
    var, cvar = parametric_var_cvar(SMALL, 0.95, min_obs=5)
    m, s = np.mean(SMALL), np.std(SMALL, ddof=1)
    assert var == pytest.approx(-norm.ppf(0.05, loc=m, scale=s))
    assert cvar == pytest.approx(-(m - s * norm.pdf(norm.ppf(0.95)) / 0.05))


# ----------------------------------------------------------------- historical
@pytest.mark.parametrize(("level", "var", "cvar"), [
    # h = (n - 1)(1 - level) = 10 * tail; VaR = -x_(h) (interpolated), CVaR = -mean of
    # the floor(h) + 1 smallest
    (0.90, 0.03, (0.05 + 0.03) / 2),
    (0.80, 0.02, (0.05 + 0.03 + 0.02) / 3),
    (0.95, 0.04, 0.05),  # h = 0.5: halfway between -0.05 and -0.03
])
def test_historical_quantile_by_hand(level: float, var: float, cvar: float) -> None:
    v, c = historical_var_cvar(SMALL, level, min_obs=5)
    assert v == pytest.approx(var, abs=1e-15)
    assert c == pytest.approx(cvar, abs=1e-15)


def test_position_historical_by_hand_on_two_symbols() -> None:
    ra = SMALL
    rb = [0.01, -0.02, 0.0, 0.01, 0.03, -0.01, 0.02, 0.0, -0.04, 0.01, 0.005]
    hist = {"A/BTC": series(ra, 0.05), "B/BTC": series(rb, 0.002)}
    w = {"A/BTC": 2.0, "B/BTC": -1.0}  # long 2, short 1 (quote currency)
    equity = 10.0
    scen = sorted((2.0 * a - 1.0 * b) / equity for a, b in zip(ra, rb, strict=True))
    res = position_var(hist, w, equity, 0.90, "historical", window=100, min_obs=5)
    assert res.observations == 11 and res.symbols == ("A/BTC", "B/BTC")
    assert res.var == pytest.approx(-scen[1], rel=1e-9)  # h = 1: the second smallest
    assert res.cvar == pytest.approx(-(scen[0] + scen[1]) / 2, rel=1e-9)


def test_position_historical_horizon_compounds_returns() -> None:
    r = [0.01, -0.02, 0.03, -0.01, 0.02]
    got = horizon_returns(np.array(r)[:, None], 2)[:, 0]
    by_hand = [(1 + r[i]) * (1 + r[i + 1]) - 1 for i in range(4)]
    assert got == pytest.approx(by_hand, rel=1e-12)
    assert horizon_returns(np.array(r)[:, None], 9).shape == (0, 1)


def test_returns_are_joined_on_time() -> None:
    ta, ca = series([0.01, 0.02, 0.03, 0.04])
    tb, cb = series([0.1, 0.2, 0.3])
    tb = tb + STEP  # B starts one bar later: its returns are at A's times 2..4
    t, r = aligned_returns({"A": (ta, ca), "B": (tb, cb)}, ["A", "B"], window=10)
    assert list(t) == list(ta[2:])
    assert r[:, 0] == pytest.approx([0.02, 0.03, 0.04])
    assert r[:, 1] == pytest.approx([0.1, 0.2, 0.3])
    t2, r2 = aligned_returns({"A": (ta, ca), "B": (tb, cb)}, ["A", "B"], window=2)
    assert list(t2) == list(ta[3:]) and r2.shape == (2, 2)


# ----------------------------------------------------------------- portfolio parametric
def test_position_parametric_against_scipy_with_covariance() -> None:
    rng = np.random.default_rng(4)
    ra, rb = rng.normal(1e-4, 0.01, 400), rng.normal(0, 0.02, 400)
    hist = {"A": series(ra), "B": series(rb)}
    w = np.array([0.3, -0.1])
    equity, h = 2.0, 3
    res = position_var(hist, {"A": 0.3, "B": -0.1}, equity, 0.99, "parametric", horizon=h,
                       window=400, min_obs=30)
    r = np.column_stack([ra, rb])
    mean = h * (r.mean(axis=0) @ w) / equity
    sd = math.sqrt(h * w @ np.cov(r, rowvar=False) @ w) / equity
    assert res.var == pytest.approx(-norm.ppf(0.01, loc=mean, scale=sd), rel=1e-9)
    assert res.cvar == pytest.approx(
        -norm.expect(lambda x: x, loc=mean, scale=sd, ub=norm.ppf(0.01, mean, sd)) / 0.01,
        rel=1e-6)


# ----------------------------------------------------------------- Monte Carlo
def test_mc_var_converges_to_parametric_for_normal_returns() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(2e-4, 0.004, 3000)
    paths, level = 200_000, 0.99
    pv, pc = parametric_var_cvar(r, level)
    mv, mc = monte_carlo_var_cvar(r, level, paths=paths, seed=3)
    s = float(np.std(r, ddof=1))
    z = norm.ppf(1 - level)
    # sampling error of the simulated 1% quantile, and the log-normal's convexity
    # (exp(x) - 1 vs x at the quantile: about (s z)^2 / 2)
    se = math.sqrt(level * (1 - level) / paths) / norm.pdf(z) * s
    tol = 4 * se + (s * z) ** 2 / 2 + 1e-9
    assert abs(mv - pv) < tol
    assert abs(mc - pc) < 2 * tol
    # and the portfolio engine (correlated GBM, one symbol) agrees with its parametric
    hist = {"X": series(r, 0.07)}
    pm = position_var(hist, {"X": 1.0}, 1.0, level, "monte_carlo", window=3000,
                      paths=paths, seed=3)
    pp = position_var(hist, {"X": 1.0}, 1.0, level, "parametric", window=3000)
    assert abs(pm.var - pp.var) < tol


def test_mc_portfolio_diversification() -> None:
    """Two independent assets: the MC VaR of the sum is about sqrt(2) x one asset's."""
    rng = np.random.default_rng(9)
    hist = {"A": series(rng.normal(0, 0.01, 2000)), "B": series(rng.normal(0, 0.01, 2000))}
    one = position_var(hist, {"A": 1.0}, 1.0, 0.99, "monte_carlo", window=2000, seed=1)
    two = position_var(hist, {"A": 1.0, "B": 1.0}, 1.0, 0.99, "monte_carlo", window=2000,
                       seed=1)
    assert 1.25 < two.var / one.var < 1.6  # sqrt(2) = 1.41, far from 2 (no diversification)


# ----------------------------------------------------------------- edge cases
def test_position_var_edges() -> None:
    hist = {"A": series(SMALL)}
    flat = position_var(hist, {}, 1.0, 0.99)
    assert (flat.var, flat.cvar, flat.reason) == (0.0, 0.0, "no position")
    short = position_var(hist, {"A": 1.0}, 1.0, 0.99, min_obs=30)
    assert short.var is None and "11 joint bar returns" in short.reason
    missing = position_var(hist, {"B": 1.0}, 1.0, 0.99)
    assert missing.var is None and "no bar history of B" in missing.reason
    broke = position_var(hist, {"A": 1.0}, 0.0, 0.99)
    assert broke.var is None and "equity" in broke.reason
    with pytest.raises(ValueError, match="unknown VaR method"):
        position_var(hist, {"A": 1.0}, 1.0, 0.9, "magic", min_obs=5)  # type: ignore[arg-type]
