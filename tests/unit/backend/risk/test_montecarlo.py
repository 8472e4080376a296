"""Monte Carlo engine (backend.risk.montecarlo) against closed forms.

Tolerances are statistical: with ``n`` independent paths, a sample mean is within
``K * sd / sqrt(n)`` of its expectation and a sample variance within ``K * var *
sqrt(2 / (n - 1))`` (normal data) except with probability ~6e-5 for ``K = 4``; the
seeds are fixed, so the tests are deterministic, and a wrong formula (e.g. a drift
without the ``- sigma^2 / 2`` correction, which moves the mean of ``ln S_T`` by
``sigma^2 T / 2 = 5e-3`` here, five times the tolerance) fails them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from backend.risk.montecarlo import (
    GbmParams,
    RegimeModel,
    calibrate_gbm,
    calibrate_regimes,
    correlated_gbm_paths,
    equity_band,
    gbm_paths,
    mc_var_cvar,
    regime_switching_paths,
    stationary_distribution,
)

K = 4.0
S0, MU, SIGMA, STEPS, PATHS = 2.0, 1e-3, 1e-2, 100, 10_000
T = STEPS * 1.0


def test_gbm_log_moments_match_the_closed_form() -> None:
    p = gbm_paths(S0, MU, SIGMA, STEPS, PATHS, dt=1.0, rng=7)
    assert p.shape == (PATHS, STEPS + 1)
    assert np.all(p[:, 0] == S0)
    x = np.log(p[:, -1])
    var = SIGMA**2 * T  # Var[ln S_T] = sigma^2 T
    mean = math.log(S0) + (MU - SIGMA**2 / 2) * T
    assert abs(x.mean() - mean) < K * math.sqrt(var / PATHS)
    assert abs(x.var(ddof=1) - var) < K * var * math.sqrt(2 / (PATHS - 1))


def test_gbm_mean_price_matches_s0_exp_mu_t() -> None:
    p = gbm_paths(S0, MU, SIGMA, STEPS, PATHS, dt=1.0, rng=11)
    expected = S0 * math.exp(MU * T)  # E[S_T] = S0 e^{mu T}
    sd = S0 * math.exp(MU * T) * math.sqrt(math.exp(SIGMA**2 * T) - 1)  # lognormal sd
    assert abs(p[:, -1].mean() - expected) < K * sd / math.sqrt(PATHS)


def test_gbm_dt_scales_time() -> None:
    """Two steps of dt = 0.5 have the terminal law of one step of dt = 1."""
    x = np.log(gbm_paths(1.0, 0.0, 0.2, 2, 20_000, dt=0.5, rng=3)[:, -1])
    assert abs(x.var(ddof=1) - 0.04) < K * 0.04 * math.sqrt(2 / 19_999)


def test_seeded_simulations_are_reproducible() -> None:
    a = gbm_paths(S0, MU, SIGMA, 20, 500, rng=42)
    b = gbm_paths(S0, MU, SIGMA, 20, 500, rng=np.random.default_rng(42))
    c = gbm_paths(S0, MU, SIGMA, 20, 500, rng=43)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    r = np.random.default_rng(0).normal(0, 0.01, 500)
    assert mc_var_cvar(r, 0.99, seed=5) == mc_var_cvar(r, 0.99, seed=5)
    model = calibrate_regimes(r)
    assert model is not None
    p1, s1 = regime_switching_paths(1.0, model, 30, 200, rng=9)
    p2, s2 = regime_switching_paths(1.0, model, 30, 200, rng=9)
    assert np.array_equal(p1, p2) and np.array_equal(s1, s2)


def test_regime_switching_with_equal_states_is_gbm() -> None:
    same = RegimeModel(mu=(MU, MU), sigma=(SIGMA, SIGMA), transition=((0.9, 0.1), (0.2, 0.8)))
    other = RegimeModel(mu=(MU, MU), sigma=(SIGMA, SIGMA), transition=((0.5, 0.5), (0.5, 0.5)))
    p, states = regime_switching_paths(S0, same, STEPS, PATHS, rng=5)
    q, _ = regime_switching_paths(S0, other, STEPS, PATHS, rng=5)
    assert states.shape == (PATHS, STEPS + 1) and set(np.unique(states)) == {0, 1}
    # the chain moves, but with equal states it cannot change any price
    assert np.array_equal(p, q)
    x = np.log(p[:, -1])
    var = SIGMA**2 * T
    assert abs(x.mean() - (math.log(S0) + (MU - SIGMA**2 / 2) * T)) < K * math.sqrt(var / PATHS)
    assert abs(x.var(ddof=1) - var) < K * var * math.sqrt(2 / (PATHS - 1))


def test_stationary_distribution_closed_form_and_simulated_occupancy() -> None:
    trans = ((0.9, 0.1), (0.3, 0.7))
    pi = stationary_distribution(trans)
    assert pi == pytest.approx([0.3 / 0.4, 0.1 / 0.4])  # (p10, p01) / (p01 + p10)
    assert np.asarray(trans).T @ pi == pytest.approx(pi)
    model = RegimeModel(mu=(0.0, 0.0), sigma=(0.01, 0.02), transition=trans)
    _, states = regime_switching_paths(1.0, model, 50, PATHS, rng=1, start=-1)
    # started from pi, every step's state is Bernoulli(pi1) across the independent paths
    for t in (0, 25, 50):
        share = states[:, t].mean()
        assert abs(share - pi[1]) < K * math.sqrt(pi[1] * pi[0] / PATHS)
    # from state 0 the chain converges to pi: after 50 steps (0.6^50 ~ 0) it is there
    _, s0 = regime_switching_paths(1.0, model, 50, PATHS, rng=2, start=0)
    assert s0[:, 0].sum() == 0
    assert abs(s0[:, -1].mean() - pi[1]) < K * math.sqrt(pi[1] * pi[0] / PATHS)


def test_regime_state_volatility_is_used() -> None:
    calm_only = RegimeModel(mu=(0.0, 0.0), sigma=(0.01, 0.05), transition=((1.0, 0.0), (0.0, 1.0)))
    p, _ = regime_switching_paths(1.0, calm_only, 1, PATHS, rng=4, start=1)
    x = np.log(p[:, -1])
    assert abs(x.var(ddof=1) - 0.05**2) < K * 0.05**2 * math.sqrt(2 / (PATHS - 1))


def test_calibrate_gbm_recovers_the_parameters() -> None:
    p = gbm_paths(1.0, 5e-4, 0.02, 5000, 1, rng=8)[0]
    fit = calibrate_gbm(p[1:] / p[:-1] - 1.0)
    assert fit is not None
    n = 5000
    assert abs(fit.sigma - 0.02) < K * 0.02 / math.sqrt(2 * (n - 1))
    assert abs(fit.mu - 5e-4) < K * 0.02 / math.sqrt(n)
    assert calibrate_gbm([0.01]) is None


def test_calibrate_regimes_separates_calm_and_wild_periods() -> None:
    rng = np.random.default_rng(3)
    r = np.concatenate([rng.normal(0, 0.005, 600), rng.normal(0, 0.03, 600),
                        rng.normal(0, 0.005, 600)])
    m = calibrate_regimes(r, window=20)
    assert m is not None
    assert m.sigma[1] > 3 * m.sigma[0]
    assert m.transition[0][0] > 0.95 and m.transition[1][1] > 0.95  # persistent regimes
    assert all(abs(sum(row) - 1) < 1e-12 for row in m.transition)
    assert m.state == 0 and sum(m.counts) == r.size - 19
    assert calibrate_regimes(r[:10]) is None


def test_correlated_gbm_has_the_requested_covariance() -> None:
    cov = np.array([[1e-4, 6e-5], [6e-5, 4e-4]])
    p = correlated_gbm_paths([1.0, 2.0], [0.0, 0.0], cov, 4, 20_000, rng=12)
    assert p.shape == (20_000, 5, 2)
    assert np.all(p[:, 0, :] == [1.0, 2.0])
    x = np.log(p[:, -1, :] / p[:, 0, :])
    c = np.corrcoef(x, rowvar=False)[0, 1]
    rho = 6e-5 / math.sqrt(1e-4 * 4e-4)
    assert abs(c - rho) < K * (1 - rho**2) / math.sqrt(20_000)  # SE of Pearson's r
    assert abs(x[:, 1].var(ddof=1) - 4 * 4e-4) < K * 16e-4 * math.sqrt(2 / 19_999)


def test_mc_var_matches_the_lognormal_quantile() -> None:
    params = GbmParams(mu=2e-4, sigma=0.01)
    var, cvar = mc_var_cvar(params, 0.99, horizon=4, paths=PATHS, seed=3)
    h = 4
    z = norm.ppf(0.01)
    exact = -(math.exp((params.mu - params.sigma**2 / 2) * h + params.sigma * math.sqrt(h) * z)
              - 1)
    # SE of the 1% quantile of ln S: sqrt(p (1-p) / n) / phi(z) * sd
    se = math.sqrt(0.01 * 0.99 / PATHS) / norm.pdf(z) * params.sigma * math.sqrt(h)
    assert var is not None and cvar is not None
    assert abs(var - exact) < K * se
    assert cvar > var
    assert mc_var_cvar([0.01] * 5, 0.99) == (None, None)
    assert mc_var_cvar(params, 1.5) == (None, None)


def test_mc_var_with_the_regime_model() -> None:
    rng = np.random.default_rng(6)
    r = np.concatenate([rng.normal(0, 0.005, 300), rng.normal(0, 0.03, 300)])
    var, cvar = mc_var_cvar(r, 0.99, paths=PATHS, seed=1, model="regime")
    calm, _ = mc_var_cvar(r[:300], 0.99, paths=PATHS, seed=1)
    assert var is not None and calm is not None and cvar is not None
    assert var > 2 * calm  # the chain starts in the volatile state of the last bars


def test_equity_band_quantiles_and_median() -> None:
    params = GbmParams(mu=1e-4, sigma=0.01)
    band = equity_band(10.0, params, steps=50, paths=PATHS, seed=2)
    assert band is not None and band.values.shape == (3, 51)
    assert np.allclose(band.values[:, 0], 10.0)
    lo, mid, hi = band.values
    assert np.all(lo <= mid) and np.all(mid <= hi)
    assert hi[-1] - lo[-1] > hi[10] - lo[10]  # the band widens
    # median of a lognormal: S0 exp((mu - sigma^2/2) t)
    t = 50
    med = 10.0 * math.exp((params.mu - params.sigma**2 / 2) * t)
    se = math.sqrt(0.25 / PATHS) / norm.pdf(0) * params.sigma * math.sqrt(t) * med
    assert abs(mid[-1] - med) < K * se
    assert equity_band(1.0, [0.01, 0.02], steps=5) is None
