"""VaR and CVaR of a set of positions from the symbols' recent returns (pure, no I/O).

Inputs: each symbol's recent closes (``symbol -> (open_times, closes)``, oldest first,
e.g. :meth:`backend.marketdata.history.CloseHistory.series`) and the positions' **signed
notionals** ``w_i = quantity_i * price_i`` (quote currency; > 0 long, < 0 short).  A
symbol's bar return at time ``t`` is ``close_t / close_prev - 1`` over its own
consecutive bars; the symbols' returns are joined on ``open_time`` (only times every
symbol has) and the last ``window`` joint rows are used.  Over a horizon of ``h`` bars:

* **historical**: the P&L scenarios ``Sum_i w_i R_i`` with ``R_i`` the overlapping
  ``h``-bar compounded returns ``prod(1 + r) - 1`` of the window; VaR/CVaR as
  :func:`backend.risk.metrics.historical_var_cvar` (empirical quantile, numpy type 7);
* **parametric** (variance-covariance, normal): P&L mean ``h * w . m`` and standard
  deviation ``sqrt(h * w' S w)`` with ``m``/``S`` the mean and covariance (``ddof=1``)
  of the bar returns; VaR/CVaR as :func:`backend.risk.metrics.normal_var_cvar`;
* **monte_carlo**: correlated GBM (:func:`backend.risk.montecarlo.correlated_gbm_paths`)
  calibrated on the log returns (drift ``mean(x) + var(x)/2``, covariance of ``x``),
  simulated in one exact step of ``dt = h`` bars (the GBM's terminal distribution is
  exactly that of ``h`` unit steps), P&L ``Sum_i w_i (S_i,T / S_i,0 - 1)``; VaR/CVaR the
  simulated quantile and tail mean (:func:`backend.risk.montecarlo.tail_var_cvar`).

Figures are **fractions of equity** (positive = loss), like :mod:`backend.risk.metrics`.
With no position the VaR is 0; with too few joint returns (< ``min_obs``) or a held
symbol without history it is ``None`` and ``reason`` says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from backend.risk.metrics import historical_var_cvar, normal_var_cvar
from backend.risk.montecarlo import correlated_gbm_paths, tail_var_cvar

VarMethod = Literal["historical", "parametric", "monte_carlo"]
METHODS: tuple[VarMethod, ...] = ("historical", "parametric", "monte_carlo")
Series = tuple[np.ndarray, np.ndarray]
#: Notionals smaller than this (quote currency) count as no position.
NOTIONAL_EPS = 1e-15


@dataclass(frozen=True)
class PositionVaR:
    """VaR / CVaR of positions (fractions of equity) and the data behind them.

    ``var``/``cvar`` are ``None`` when unknown (``reason`` says why); ``observations``
    is the number of joint bar returns used; ``symbols`` the symbols with a position.
    """

    var: float | None
    cvar: float | None
    method: str
    level: float
    horizon: int
    observations: int = 0
    symbols: tuple[str, ...] = ()
    reason: str = ""


def symbol_returns(times: np.ndarray, closes: np.ndarray) -> Series:
    """``(times[1:], closes[1:] / closes[:-1] - 1)`` with non-finite returns dropped."""
    t = np.asarray(times, dtype=np.int64)
    c = np.asarray(closes, dtype=float)
    if c.size < 2:
        return np.empty(0, dtype=np.int64), np.empty(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = c[1:] / c[:-1] - 1.0
    ok = np.isfinite(r)
    return t[1:][ok], r[ok]


def aligned_returns(
    history: Mapping[str, Series], symbols: list[str] | tuple[str, ...], window: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Bar returns of ``symbols`` joined on time: ``(times (n,), returns (n, k))``.

    Only times at which every symbol has a return are kept, then the last ``window``.
    A symbol without history gives ``n = 0``.
    """
    k = len(symbols)
    if k == 0 or any(s not in history for s in symbols):
        return np.empty(0, dtype=np.int64), np.empty((0, k))
    per = [symbol_returns(*history[s]) for s in symbols]
    common = per[0][0]
    for t, _ in per[1:]:
        common = np.intersect1d(common, t, assume_unique=True)
    common = common[-int(window):] if window > 0 else common
    cols = [r[np.searchsorted(t, common)] for t, r in per]
    return common, np.column_stack(cols) if cols else np.empty((0, 0))


def horizon_returns(returns: np.ndarray, horizon: int) -> np.ndarray:
    """Overlapping ``horizon``-bar compounded returns ``prod(1 + r) - 1``, shape
    ``(n - horizon + 1, k)`` (the input when ``horizon == 1``; empty if too short)."""
    r = np.asarray(returns, dtype=float)
    h = int(horizon)
    if h <= 1:
        return r
    if r.shape[0] < h:
        return np.empty((0,) + r.shape[1:])
    logs = np.log1p(r)
    c = np.vstack([np.zeros((1,) + r.shape[1:]), np.cumsum(logs, axis=0)])
    return np.expm1(c[h:] - c[:-h])


def position_var(
    history: Mapping[str, Series],
    notionals: Mapping[str, float],
    equity: float,
    level: float,
    method: VarMethod = "historical",
    horizon: int = 1,
    window: int = 288,
    min_obs: int = 30,
    paths: int = 10_000,
    seed: int = 0,
) -> PositionVaR:
    """VaR and CVaR of positions with signed ``notionals`` (module docstring).

    Parameters
    ----------
    history
        ``symbol -> (open_times ns (n,), closes (n,))``, oldest first.
    notionals
        ``symbol -> quantity * price`` (quote currency, signed).
    equity
        Account equity (quote currency) the figures are fractions of (> 0).
    level
        Confidence level in (0, 1).
    method
        ``historical``, ``parametric`` or ``monte_carlo``.
    horizon
        Bars ahead (>= 1).
    window
        Joint bar returns used (the most recent).
    min_obs
        Fewest joint returns (historical: ``h``-bar scenarios) for an estimate.
    paths, seed
        Monte Carlo paths and seed (same seed, same figures).

    Returns
    -------
    PositionVaR
    """
    held = {s: float(v) for s, v in notionals.items()
            if math.isfinite(float(v)) and abs(float(v)) > NOTIONAL_EPS}
    syms = tuple(sorted(held))
    base: dict[str, Any] = {
        "method": method, "level": float(level), "horizon": int(horizon), "symbols": syms,
    }
    if not syms:
        return PositionVaR(var=0.0, cvar=0.0, reason="no position", **base)
    if not (equity > 0 and math.isfinite(equity)):
        return PositionVaR(var=None, cvar=None, reason=f"equity {equity:.8g} is not > 0",
                           **base)
    missing = [s for s in syms if s not in history or len(history[s][1]) < 2]
    if missing:
        return PositionVaR(var=None, cvar=None, reason=f"no bar history of {', '.join(missing)}",
                           **base)
    _, r = aligned_returns(history, syms, window)
    n = int(r.shape[0])
    w = np.array([held[s] for s in syms]) / equity
    need = max(int(min_obs), 2)
    if n < need:
        return PositionVaR(var=None, cvar=None, observations=n,
                           reason=f"{n} joint bar returns of {', '.join(syms)} < {need} needed",
                           **base)
    h = max(int(horizon), 1)
    if method == "historical":
        scen = horizon_returns(r, h) @ w
        var, cvar = historical_var_cvar(scen, level, min_obs=need)
        if var is None:
            return PositionVaR(var=None, cvar=None, observations=n,
                               reason=f"{scen.size} {h}-bar scenarios < {need} needed", **base)
    elif method == "parametric":
        cov = np.atleast_2d(np.cov(r, rowvar=False, ddof=1))
        mean = h * float(r.mean(axis=0) @ w)
        sd = math.sqrt(max(h * float(w @ cov @ w), 0.0))
        var, cvar = normal_var_cvar(mean, sd, level)
    elif method == "monte_carlo":
        x = np.log1p(r)
        cov = np.atleast_2d(np.cov(x, rowvar=False, ddof=1))
        mu = x.mean(axis=0) + 0.5 * np.diag(cov)
        sim = correlated_gbm_paths(np.ones(len(syms)), mu, cov, steps=1, paths=paths,
                                   dt=float(h), rng=seed)
        var, cvar = tail_var_cvar((sim[:, -1, :] - 1.0) @ w, level)
    else:
        raise ValueError(f"unknown VaR method {method!r} (use {', '.join(METHODS)})")
    return PositionVaR(var=var, cvar=cvar, observations=n, **base)
