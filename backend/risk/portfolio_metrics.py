"""Portfolio metrics: Sharpe, Sortino, max drawdown, beta, exposure, correlation (pure).

Definitions (returns are simple returns per bar, fractions; money in quote currency):

* ``sharpe``/``sortino``: :func:`empyrical.sharpe_ratio` / :func:`empyrical.sortino_ratio`
  of the equity curve's bar returns, risk-free rate 0, annualised with
  ``periods_per_year`` (5-minute bars 24/7: 105 120), as :mod:`backend.performance.report` does;
* ``max_drawdown``: the largest fall from a running peak of the equity curve, a positive
  fraction (``-empyrical.max_drawdown``);
* ``beta`` to a benchmark symbol: ``cov(r_p, r_b) / var(r_b)`` (sample moments,
  ``ddof=1``) of the equity curve's returns and the benchmark's bar returns on the times
  both have (Sharpe 1964, the CAPM beta);
* ``exposure``: gross ``Sum |q_i p_i|`` and net ``Sum q_i p_i`` notional, and their
  fractions of equity;
* ``correlation``: Pearson correlation of the held symbols' bar returns joined on time
  (:func:`numpy.corrcoef`).

Undefined values (too few points, zero variance) are ``None``, never NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import empyrical
import numpy as np

from backend.common import PERIODS_5M_24_7, finite_or_none
from backend.rest.risk import PortfolioMetricsView
from backend.risk.portfolio_var import Series, aligned_returns, symbol_returns

#: Fewest joint returns for beta and correlations.
MIN_PAIRS = 3


def sharpe(returns: np.ndarray, periods_per_year: float = PERIODS_5M_24_7) -> float | None:
    """Annualised Sharpe ratio (empyrical; risk-free 0); ``None`` if undefined."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return None
    return finite_or_none(empyrical.sharpe_ratio(r, annualization=periods_per_year))


def sortino(returns: np.ndarray, periods_per_year: float = PERIODS_5M_24_7) -> float | None:
    """Annualised Sortino ratio (empyrical; target 0); ``None`` if undefined."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return None
    return finite_or_none(empyrical.sortino_ratio(r, annualization=periods_per_year))


def max_drawdown(equity: np.ndarray) -> float | None:
    """Largest peak-to-trough fall of an equity curve, positive fraction (``None`` if
    fewer than two points)."""
    v = np.asarray(equity, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        r = v[1:] / v[:-1] - 1.0
    dd = finite_or_none(empyrical.max_drawdown(r[np.isfinite(r)]))
    return None if dd is None else abs(dd)


def beta(returns: np.ndarray, benchmark: np.ndarray) -> float | None:
    """``cov(r, b) / var(b)`` with ``ddof=1``; ``None`` with fewer than
    :data:`MIN_PAIRS` pairs or a flat benchmark."""
    r = np.asarray(returns, dtype=float)
    b = np.asarray(benchmark, dtype=float)
    if r.size != b.size or r.size < MIN_PAIRS:
        return None
    var_b = float(np.var(b, ddof=1))
    if not var_b > 0:
        return None
    return finite_or_none(float(np.cov(r, b, ddof=1)[0, 1]) / var_b)


def correlation(returns: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix of the columns of ``returns`` (shape ``(n, k)`` ->
    ``(k, k)``); NaN where a column is flat."""
    r = np.asarray(returns, dtype=float)
    k = r.shape[1] if r.ndim == 2 else 0
    if r.ndim != 2 or r.shape[0] < 2:
        return np.full((k, k), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.atleast_2d(np.corrcoef(r, rowvar=False))


def equity_returns(times: np.ndarray, equity: np.ndarray) -> Series:
    """``(times[1:], equity[1:] / equity[:-1] - 1)`` without non-finite returns."""
    return symbol_returns(times, equity)


def portfolio_metrics(
    times: Sequence[int] | np.ndarray,
    equity: Sequence[float] | np.ndarray,
    history: Mapping[str, Series],
    notionals: Mapping[str, float],
    equity_now: float | None,
    benchmark: str = "",
    window: int = 288,
    periods_per_year: float = PERIODS_5M_24_7,
) -> PortfolioMetricsView:
    """Metrics of the account (see the module docstring).

    Parameters
    ----------
    times, equity
        The equity curve: bar open times (ns) and equity (quote), oldest first.
    history
        ``symbol -> (open_times, closes)`` of recent bars (beta, correlations).
    notionals
        Signed notional per held symbol (``quantity * mark``, quote currency).
    equity_now
        Current equity (quote currency) for the exposure fractions.
    benchmark
        Symbol beta is measured against (``""``: no beta).
    window
        Most recent joint returns used for the correlations.
    periods_per_year
        Bars per year for annualisation.
    """
    t = np.asarray(times, dtype=np.int64)
    v = np.asarray(equity, dtype=float)
    et, er = equity_returns(t, v)
    b = None
    n_beta = 0
    if benchmark and benchmark in history:
        bt, br = symbol_returns(*history[benchmark])
        common, ia, ib = np.intersect1d(et, bt, assume_unique=True, return_indices=True)
        n_beta = int(common.size)
        b = beta(er[ia], br[ib])
    held = sorted(s for s, x in notionals.items() if abs(x) > 0)
    corr: dict[str, dict[str, float | None]] = {}
    n_corr = 0
    if held:
        _, r = aligned_returns(history, held, window)
        n_corr = int(r.shape[0])
        c = correlation(r) if n_corr >= MIN_PAIRS else np.full((len(held),) * 2, np.nan)
        corr = {a: {bb: finite_or_none(c[i, j]) for j, bb in enumerate(held)}
                for i, a in enumerate(held)}
    gross = float(sum(abs(x) for x in notionals.values()))
    net = float(sum(notionals.values()))
    eq = equity_now if equity_now is not None and equity_now > 0 else None
    return PortfolioMetricsView(
        sharpe=sharpe(er, periods_per_year), sortino=sortino(er, periods_per_year),
        max_drawdown=max_drawdown(v), periods_per_year=periods_per_year,
        observations=int(er.size), benchmark=benchmark or None, beta=b,
        beta_observations=n_beta, gross_exposure=gross, net_exposure=net,
        gross_exposure_pct=finite_or_none(gross / eq) if eq is not None else None,
        net_exposure_pct=finite_or_none(net / eq) if eq is not None else None,
        correlation=corr, correlation_observations=n_corr,
    )
