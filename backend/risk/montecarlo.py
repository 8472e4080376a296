"""Monte Carlo price paths (numpy, vectorised): GBM, correlated GBM, two-state regime switching.

Units and conventions: prices in quote currency per base unit (any positive level works:
paths are usually simulated from ``s0 = 1`` and read as price relatives); one time step
is one bar of the calibration data unless ``dt`` says otherwise (``dt`` in bars);
``mu`` and ``sigma`` are per unit of ``dt`` (per bar with ``dt = 1``); returns are simple
returns (fractions).  Every simulation takes a seeded :class:`numpy.random.Generator`
(or a seed): the same seed gives the same figures.  Nothing loops over paths; the regime
chain loops over steps only.

Models
------
* **GBM** (geometric Brownian motion, Black & Scholes 1973; e.g. Glasserman, *Monte Carlo
  Methods in Financial Engineering*, Springer 2003, Section 3.2.1), the exact log-normal
  discretisation::

      S_{t+1} = S_t * exp((mu - sigma^2 / 2) dt + sigma sqrt(dt) Z),   Z ~ N(0, 1)

  so ``E[S_T] = S_0 exp(mu T)`` and ``Var[ln S_T] = sigma^2 T`` (``T = steps * dt``).
  Calibration (:func:`calibrate_gbm`) from simple returns ``r``: log returns ``x =
  ln(1 + r)``, ``sigma = std(x, ddof=1) / sqrt(dt)``, ``mu = mean(x) / dt + sigma^2 / 2``.
* **Correlated GBM** (:func:`correlated_gbm_paths`): per asset ``i`` the log step is
  ``(mu_i - Sigma_ii / 2) dt + sqrt(dt) (L eps)_i`` with ``eps ~ N(0, I)`` and ``L`` the
  Cholesky factor of the log returns' covariance ``Sigma = L L^T`` (Glasserman 2003,
  Sections 2.3.3 and 3.2.3).
* **Regime switching** (:func:`regime_switching_paths`): a two-state Markov chain
  (Hamilton 1989) with per-state ``mu``/``sigma``; at each step the state moves with the
  transition matrix ``P`` (``P[i, j]`` = probability of going from ``i`` to ``j``), then
  the price moves by the GBM step of the new state.  Calibration
  (:func:`calibrate_regimes`) is deliberately simple and deterministic (no EM fit): bars
  are split into calm and volatile by their trailing volatility (two-means threshold),
  each state gets its own GBM fit and the transition matrix counts the state changes;
  details in :mod:`backend.risk.calibration` (where the calibration functions live; they
  are re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.risk.calibration import (  # noqa: F401 - part of this module's interface
    ArrayLike,
    GbmParams,
    RegimeModel,
    calibrate_gbm,
    calibrate_regimes,
    stationary_distribution,
)

Seed = int | np.random.Generator | None

#: Default quantiles of :func:`equity_band` (5%, median, 95%).
BAND_QUANTILES: tuple[float, ...] = (0.05, 0.5, 0.95)


def make_rng(seed: Seed) -> np.random.Generator:
    """``seed`` as a :class:`numpy.random.Generator` (a Generator is returned as is)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# ----------------------------------------------------------------- simulation
def gbm_paths(
    s0: float, mu: float, sigma: float, steps: int, paths: int, dt: float = 1.0,
    rng: Seed = None,
) -> np.ndarray:
    """GBM price paths by the exact log-normal step (module docstring).

    Parameters
    ----------
    s0
        Start price (quote/base), > 0.
    mu, sigma
        Drift and volatility per unit of ``dt``.
    steps, paths
        Number of steps and of independent paths.
    dt
        Step length (bars).
    rng
        Seeded generator or seed.

    Returns
    -------
    numpy.ndarray
        Prices, shape ``(paths, steps + 1)``; column 0 is ``s0``.
    """
    g = make_rng(rng)
    z = g.standard_normal((int(paths), int(steps)))
    inc = (mu - 0.5 * sigma * sigma) * dt + sigma * math.sqrt(dt) * z
    logp = np.empty((int(paths), int(steps) + 1))
    logp[:, 0] = 0.0
    np.cumsum(inc, axis=1, out=logp[:, 1:])
    return s0 * np.exp(logp)


def _cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower factor ``L`` with ``L L^T = cov``; a PSD matrix that is not PD (perfectly
    correlated or flat assets) goes through its clipped eigen-decomposition instead."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(cov)
        return v * np.sqrt(np.clip(w, 0.0, None))


def correlated_gbm_paths(
    s0: ArrayLike, mu: ArrayLike, cov: ArrayLike, steps: int, paths: int, dt: float = 1.0,
    rng: Seed = None,
) -> np.ndarray:
    """Correlated GBM paths of ``k`` assets (Cholesky of the log-return covariance).

    Parameters
    ----------
    s0
        Start prices, shape ``(k,)``.
    mu
        Drifts per unit of ``dt``, shape ``(k,)``.
    cov
        Covariance of the log returns per unit of ``dt``, shape ``(k, k)``; its diagonal
        is ``sigma^2``.
    steps, paths, dt, rng
        As :func:`gbm_paths`.

    Returns
    -------
    numpy.ndarray
        Prices, shape ``(paths, steps + 1, k)``.
    """
    g = make_rng(rng)
    s0 = np.atleast_1d(np.asarray(s0, dtype=float))
    mu = np.atleast_1d(np.asarray(mu, dtype=float))
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    k = s0.size
    chol = _cholesky(cov)
    z = g.standard_normal((int(paths), int(steps), k)) @ chol.T
    drift = (mu - 0.5 * np.diag(cov)) * dt
    inc = drift + math.sqrt(dt) * z
    logp = np.zeros((int(paths), int(steps) + 1, k))
    np.cumsum(inc, axis=1, out=logp[:, 1:, :])
    return s0 * np.exp(logp)


def regime_switching_paths(
    s0: float, model: RegimeModel, steps: int, paths: int, dt: float = 1.0,
    rng: Seed = None, start: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Price paths of a two-state regime-switching GBM.

    At every step the chain first moves (``P[state]``), then the price takes the GBM
    step of the new state.  Vectorised over paths; one loop over the steps.

    Parameters
    ----------
    s0
        Start price (quote/base).
    model
        Per-state ``mu``/``sigma`` (per unit of ``dt``) and the transition matrix.
    steps, paths, dt, rng
        As :func:`gbm_paths`.
    start
        Start state of every path; ``None`` = ``model.state``; ``-1`` = drawn from the
        stationary distribution.

    Returns
    -------
    prices, states
        Prices shape ``(paths, steps + 1)`` (column 0 is ``s0``); states shape
        ``(paths, steps + 1)`` (``int8``, column 0 the start state).
    """
    g = make_rng(rng)
    n, m = int(paths), int(steps)
    p01 = model.transition[0][1]
    p11 = model.transition[1][1]
    mu = np.asarray(model.mu, dtype=float)
    sig = np.asarray(model.sigma, dtype=float)
    states = np.empty((n, m + 1), dtype=np.int8)
    if start is None:
        start = model.state
    if start == -1:
        pi1 = stationary_distribution(model.transition)[1]
        states[:, 0] = g.random(n) < pi1
    else:
        states[:, 0] = int(start)
    u = g.random((n, m))
    for t in range(m):
        cur = states[:, t]
        states[:, t + 1] = u[:, t] < np.where(cur == 1, p11, p01)
    z = g.standard_normal((n, m))
    s = states[:, 1:]
    inc = (mu[s] - 0.5 * sig[s] ** 2) * dt + sig[s] * math.sqrt(dt) * z
    logp = np.zeros((n, m + 1))
    np.cumsum(inc, axis=1, out=logp[:, 1:])
    return s0 * np.exp(logp), states


# ----------------------------------------------------------------- risk figures
def tail_var_cvar(pnl: np.ndarray, level: float) -> tuple[float, float]:
    """VaR and CVaR of simulated outcomes (positive = loss).

    ``VaR = -quantile(pnl, 1 - level)`` (numpy's linear interpolation) and ``CVaR =
    -mean(pnl[pnl <= -VaR])``: the expected shortfall of the simulated distribution.
    """
    q = float(np.quantile(pnl, 1.0 - level))
    tail = pnl[pnl <= q]
    return -q, -float(tail.mean()) if tail.size else -q


def mc_var_cvar(
    source: ArrayLike | GbmParams | RegimeModel,
    level: float,
    horizon: int = 1,
    paths: int = 10_000,
    seed: Seed = 0,
    min_obs: int = 30,
    model: str = "gbm",
) -> tuple[float | None, float | None]:
    """Monte Carlo VaR and CVaR of the return over ``horizon`` bars.

    Parameters
    ----------
    source
        Simple returns per bar to calibrate on (shape ``(n,)``), or a calibrated
        :class:`GbmParams` / :class:`RegimeModel`.
    level
        Confidence level in (0, 1).
    horizon
        Bars ahead (steps of the simulation, ``dt = 1``).
    paths
        Number of simulated paths.
    seed
        Seed or generator (same seed, same figures).
    min_obs
        Fewest returns to calibrate on.
    model
        ``"gbm"`` or ``"regime"`` (two-state regime switching) when ``source`` is returns.

    Returns
    -------
    tuple of (float or None, float or None)
        ``(var, cvar)`` as positive loss fractions of the position's value over the
        horizon; ``(None, None)`` with too little data or a level outside (0, 1).
    """
    if not 0.0 < level < 1.0:
        return None, None
    params: GbmParams | RegimeModel | None
    if isinstance(source, GbmParams | RegimeModel):
        params = source
    else:
        params = (calibrate_regimes(source, min_obs=min_obs) if model == "regime"
                  else calibrate_gbm(source, min_obs=min_obs))
    if params is None:
        return None, None
    if isinstance(params, RegimeModel):
        prices, _ = regime_switching_paths(1.0, params, horizon, paths, rng=seed)
    else:
        prices = gbm_paths(1.0, params.mu, params.sigma, horizon, paths, rng=seed)
    var, cvar = tail_var_cvar(prices[:, -1] - 1.0, level)
    return var, cvar


@dataclass(frozen=True)
class EquityBand:
    """Quantiles of simulated equity over the next steps.

    Attributes
    ----------
    quantiles
        Probabilities, shape ``(q,)``.
    values
        Equity (quote currency) at each quantile and step, shape ``(q, steps + 1)``;
        column 0 is the current equity.
    model
        ``"gbm"`` or ``"regime"``.
    paths
        Number of simulated paths.
    """

    quantiles: tuple[float, ...]
    values: np.ndarray
    model: str
    paths: int


def equity_band(
    equity0: float,
    source: ArrayLike | GbmParams | RegimeModel,
    steps: int = 100,
    paths: int = 10_000,
    quantiles: Sequence[float] = BAND_QUANTILES,
    seed: Seed = 0,
    min_obs: int = 30,
    model: str = "gbm",
) -> EquityBand | None:
    """Forecast band of equity: quantiles of simulated equity paths per step.

    Parameters
    ----------
    equity0
        Equity now (quote currency).
    source
        Simple returns of the equity curve per bar, or calibrated parameters.
    steps
        Bars ahead.
    paths, seed, min_obs, model
        As :func:`mc_var_cvar`.
    quantiles
        Probabilities in [0, 1].

    Returns
    -------
    EquityBand or None
        ``None`` with too little data.
    """
    params: GbmParams | RegimeModel | None
    if isinstance(source, GbmParams | RegimeModel):
        params = source
    else:
        params = (calibrate_regimes(source, min_obs=min_obs) if model == "regime"
                  else calibrate_gbm(source, min_obs=min_obs))
    if params is None or not math.isfinite(equity0):
        return None
    if isinstance(params, RegimeModel):
        prices, _ = regime_switching_paths(equity0, params, steps, paths, rng=seed)
        name = "regime"
    else:
        prices = gbm_paths(equity0, params.mu, params.sigma, steps, paths, rng=seed)
        name = "gbm"
    q = tuple(float(x) for x in quantiles)
    return EquityBand(quantiles=q, values=np.quantile(prices, q, axis=0), model=name,
                      paths=int(paths))
