"""Calibration of the Monte Carlo models (:mod:`backend.risk.montecarlo`) from bar returns.

Pure numpy, deterministic.  ``mu``/``sigma`` are per unit of ``dt`` (bars); returns are
simple returns (fractions).

* :func:`calibrate_gbm`: log returns ``x = ln(1 + r)``, ``sigma = std(x, ddof=1) /
  sqrt(dt)``, ``mu = mean(x) / dt + sigma^2 / 2`` (so that ``E[S_{t+dt}] = S_t e^{mu dt}``).
* :func:`calibrate_regimes`: the two-state model.  The trailing ``window``-bar standard
  deviation of log returns labels each bar *high volatility* (state 1) when its
  logarithm is above a threshold, else *calm* (state 0); the threshold is the two-means
  split of the log volatilities (Ridler & Calvard 1978 "ISODATA" iteration: start at the
  median, move to the midpoint of the two groups' means until it no longer changes);
  each state's ``mu``/``sigma`` is :func:`calibrate_gbm` on its bars; the transition
  matrix counts the transitions between consecutive labelled bars with add-one
  (Laplace) smoothing, so every row is a proper distribution; the chain starts in the
  state of the last bar.
* :func:`stationary_distribution` of a Markov chain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ArrayLike = Sequence[float] | np.ndarray

def _clean(returns: ArrayLike) -> np.ndarray:
    try:
        r = np.asarray(returns, dtype=float).ravel()
    except (TypeError, ValueError):
        return np.empty(0)
    return r[np.isfinite(r) & (r > -1.0)]


@dataclass(frozen=True)
class GbmParams:
    """Drift ``mu`` and volatility ``sigma`` of a GBM, per unit of ``dt`` (bars)."""

    mu: float
    sigma: float


@dataclass(frozen=True)
class RegimeModel:
    """A two-state regime-switching GBM.

    Attributes
    ----------
    mu, sigma
        Per-state drift and volatility, shape ``(2,)`` (per bar).
    transition
        ``P[i, j]`` = probability of moving from state ``i`` to ``j`` in one step,
        shape ``(2, 2)``, rows summing to 1.
    state
        State of the last calibration bar (where simulations start).
    counts
        Number of calibration bars in each state.
    """

    mu: tuple[float, float]
    sigma: tuple[float, float]
    transition: tuple[tuple[float, float], tuple[float, float]]
    state: int = 0
    counts: tuple[int, int] = (0, 0)


# ----------------------------------------------------------------- calibration
def calibrate_gbm(returns: ArrayLike, dt: float = 1.0, min_obs: int = 2) -> GbmParams | None:
    """GBM parameters from simple returns (see the module docstring).

    Parameters
    ----------
    returns
        Simple returns per step, shape ``(n,)``; non-finite values and returns ``<= -1``
        are dropped.
    dt
        Length of one return's period in model time units (bars).
    min_obs
        Fewest usable returns (at least 2).

    Returns
    -------
    GbmParams or None
        ``None`` with too few returns.
    """
    r = _clean(returns)
    if r.size < max(int(min_obs), 2):
        return None
    x = np.log1p(r)
    sigma = float(np.std(x, ddof=1)) / math.sqrt(dt)
    mu = float(np.mean(x)) / dt + 0.5 * sigma * sigma
    return GbmParams(mu=mu, sigma=sigma)


def calibrate_regimes(
    returns: ArrayLike, window: int = 20, min_obs: int = 30,
) -> RegimeModel | None:
    """Two-state regime model by splitting returns at the median rolling volatility.

    Parameters
    ----------
    returns
        Simple returns per bar, oldest first, shape ``(n,)``.
    window
        Bars of the trailing standard deviation that labels each bar (>= 2).
    min_obs
        Fewest usable returns; each state also needs 2 bars, else both states get the
        whole sample's parameters.

    Returns
    -------
    RegimeModel or None
        ``None`` with fewer than ``max(min_obs, window + 1)`` returns.
    """
    r = _clean(returns)
    window = max(int(window), 2)
    if r.size < max(int(min_obs), window + 1):
        return None
    x = np.log1p(r)
    windows = np.lib.stride_tricks.sliding_window_view(x, window)
    vol = windows.std(axis=1, ddof=1)  # vol[j] covers x[j : j + window]
    labelled = x[window - 1:]
    state = (np.log(np.maximum(vol, 1e-300)) > _two_means_split(vol)).astype(np.int64)
    whole = calibrate_gbm(r)
    assert whole is not None
    mus, sigmas = [], []
    for s in (0, 1):
        p = calibrate_gbm(np.expm1(labelled[state == s])) or whole
        mus.append(p.mu)
        sigmas.append(p.sigma)
    counts = np.ones((2, 2))  # add-one smoothing
    np.add.at(counts, (state[:-1], state[1:]), 1.0)
    trans = counts / counts.sum(axis=1, keepdims=True)
    return RegimeModel(
        mu=(mus[0], mus[1]), sigma=(sigmas[0], sigmas[1]),
        transition=((float(trans[0, 0]), float(trans[0, 1])),
                    (float(trans[1, 0]), float(trans[1, 1]))),
        state=int(state[-1]), counts=(int((state == 0).sum()), int((state == 1).sum())),
    )


def _two_means_split(vol: np.ndarray, max_iter: int = 100) -> float:
    """Threshold of the log volatilities between two groups (ISODATA iteration)."""
    lv = np.log(np.maximum(vol, 1e-300))
    t = float(np.median(lv))
    for _ in range(max_iter):
        lo, hi = lv[lv <= t], lv[lv > t]
        if lo.size == 0 or hi.size == 0:
            return t
        new = 0.5 * (float(lo.mean()) + float(hi.mean()))
        if new == t:
            break
        t = new
    return t


def stationary_distribution(transition: ArrayLike | Sequence[Sequence[float]]) -> np.ndarray:
    """Stationary distribution ``pi`` of a Markov chain: ``pi P = pi``, ``sum(pi) = 1``.

    Solved as the least-squares solution of ``[(P^T - I); 1...1] pi = [0; 1]``; for two
    states it equals ``(P[1, 0], P[0, 1]) / (P[0, 1] + P[1, 0])``.  Shape ``(k,)``.
    """
    p = np.asarray(transition, dtype=float)
    k = p.shape[0]
    a = np.vstack([p.T - np.eye(k), np.ones((1, k))])
    b = np.zeros(k + 1)
    b[-1] = 1.0
    pi = np.linalg.lstsq(a, b, rcond=None)[0]
    return pi / pi.sum()
