"""Value at Risk, expected shortfall and exposure of the account (pure functions, no I/O).

Conventions (shared with :mod:`backend.rest.models`):

* Returns are **simple bar returns** of the mark-to-market equity curve, ``r_t = E_t /
  E_{t-1} - 1`` (fractions, one period = one bar of the curve).
* VaR and CVaR are **one-period losses as positive fractions of equity**: ``var = 0.01``
  means "at confidence ``level`` the next bar loses at most 1% of equity".  A negative
  value means that even the ``1 - level`` tail of the returns is a gain (a curve that only
  rose); it is reported as is, not clipped to 0.  Quote-currency figures are the fraction
  times the current equity.
* ``level`` is the confidence level (0.95, 0.99): the tail probability is ``1 - level``.
* An estimate needs at least ``min_obs`` returns (default 30); with fewer it is ``None``.
  Nothing here raises on empty, flat or NaN input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import empyrical
import numpy as np
from scipy.stats import norm

from backend.common import finite_or_none
from backend.messages import PortfolioMarked
from backend.rest.models import RiskFigures, SymbolExposure, VaREstimate
from backend.risk.montecarlo import mc_var_cvar

#: Default confidence levels of :func:`risk_figures`.
DEFAULT_LEVELS: tuple[float, ...] = (0.95, 0.99)
#: Default minimum number of returns for an estimate.
DEFAULT_MIN_OBS = 30

ArrayLike = Sequence[float] | np.ndarray


def _clean(returns: ArrayLike | Iterable[float]) -> np.ndarray:
    """1-D float array of the finite values of ``returns`` (empty on unusable input)."""
    try:
        r = np.asarray(returns, dtype=float).ravel()
    except (TypeError, ValueError):
        return np.empty(0)
    return r[np.isfinite(r)]


def _tail(level: float) -> float | None:
    """Tail probability ``1 - level`` (rounded so 1 - 0.9 is 0.1), ``None`` if not in (0, 1)."""
    try:
        level = float(level)
    except (TypeError, ValueError):
        return None
    if not (0.0 < level < 1.0):
        return None
    return round(1.0 - level, 12)


def bar_returns(equity: ArrayLike) -> np.ndarray:
    """Simple returns of an equity curve.

    Parameters
    ----------
    equity
        Equity values in quote currency, oldest first, shape ``(n,)``.

    Returns
    -------
    numpy.ndarray
        ``equity[1:] / equity[:-1] - 1`` (fractions per bar), shape ``(n - 1,)`` before
        the non-finite values (NaN or infinite equity, division by 0) are dropped.
        Empty for fewer than two points.
    """
    try:
        v = np.asarray(equity, dtype=float).ravel()
    except (TypeError, ValueError):
        return np.empty(0)
    if v.size < 2:
        return np.empty(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = v[1:] / v[:-1] - 1.0
    return r[np.isfinite(r)]


def historical_var_cvar(
    returns: ArrayLike, level: float, min_obs: int = DEFAULT_MIN_OBS,
) -> tuple[float | None, float | None]:
    """Historical-simulation VaR and CVaR (expected shortfall) of one period.

    Computed with empyrical-reloaded (0.7.1, whose definitions were checked in its source):

    * ``VaR = -empyrical.value_at_risk(r, 1 - level)``, i.e. minus
      ``numpy.percentile(r, 100 * (1 - level))``: the empirical ``1 - level`` quantile
      with numpy's default linear interpolation between order statistics (Hyndman & Fan
      type 7: position ``h = (n - 1)(1 - level)`` in the sorted returns).
    * ``CVaR = -empyrical.conditional_value_at_risk(r, 1 - level)``: minus the mean of the
      ``k = floor((n - 1)(1 - level)) + 1`` smallest returns, i.e. of the order statistics
      up to and including ``x_(floor h)``, the one at or just below the VaR quantile.
      Every averaged return is ``<=`` that quantile, so ``CVaR >= VaR`` always.  (With
      ties at the quantile only ``k`` of them are averaged; the value differs from a
      "mean of all returns ``<=`` VaR" by at most those ties.)

    E.g. ``n = 100``, ``level = 0.95``: VaR interpolates 95% of the way from the 5th to the
    6th smallest return, CVaR averages the 5 smallest; at 0.99 VaR lies between the two
    smallest and CVaR is the smallest.

    Parameters
    ----------
    returns
        Simple returns per period (fractions); non-finite values are dropped first.
    level
        Confidence level in (0, 1), e.g. 0.95 or 0.99.
    min_obs
        Minimum number of finite returns (at least 1 is always required).

    Returns
    -------
    tuple of (float or None, float or None)
        ``(var, cvar)`` as positive loss fractions of equity per period; ``(None, None)``
        with fewer than ``min_obs`` returns or a level outside (0, 1).
    """
    r = _clean(returns)
    tail = _tail(level)
    if tail is None or r.size < max(int(min_obs), 1):
        return None, None
    var = finite_or_none(-empyrical.value_at_risk(r, cutoff=tail))
    cvar = finite_or_none(-empyrical.conditional_value_at_risk(r, cutoff=tail))
    return var, cvar


def parametric_var_cvar(
    returns: ArrayLike, level: float, min_obs: int = DEFAULT_MIN_OBS,
) -> tuple[float | None, float | None]:
    """Normal (variance-covariance) VaR and CVaR of one period.

    With ``mu`` the sample mean and ``sigma`` the sample standard deviation (``ddof=1``)
    of the returns, ``z_p = Phi^-1(p)`` and ``phi`` the standard normal density::

        VaR  = -(mu + sigma * z_{1-level})
        CVaR = -(mu - sigma * phi(z_level) / (1 - level))

    These are the VaR and expected shortfall of a Gaussian loss ``L = -r ~ N(-mu,
    sigma^2)``: ``VaR_a = mu_L + sigma Phi^-1(a)`` and ``ES_a = mu_L + sigma
    phi(Phi^-1(a)) / (1 - a)`` (McNeil, Frey & Embrechts, *Quantitative Risk Management*,
    Princeton University Press, 2005, Section 2.2, Example 2.18 "Expected shortfall for
    Gaussian loss distribution").

    Parameters
    ----------
    returns
        Simple returns per period (fractions); non-finite values are dropped first.
    level
        Confidence level in (0, 1), e.g. 0.95 or 0.99.
    min_obs
        Minimum number of finite returns (at least 2 are always required for ``sigma``).

    Returns
    -------
    tuple of (float or None, float or None)
        ``(var, cvar)`` as positive loss fractions of equity per period; ``(None, None)``
        with too few returns or a level outside (0, 1).  A flat curve gives ``(0, 0)``.
    """
    r = _clean(returns)
    if _tail(level) is None or r.size < max(int(min_obs), 2):
        return None, None
    return normal_var_cvar(float(np.mean(r)), float(np.std(r, ddof=1)), level)


def normal_var_cvar(mu: float, sigma: float, level: float) -> tuple[float | None, float | None]:
    """VaR and CVaR of a normal return ``N(mu, sigma^2)`` (formulas of
    :func:`parametric_var_cvar`); ``(None, None)`` for a level outside (0, 1)."""
    tail = _tail(level)
    if tail is None:
        return None, None
    lvl = 1.0 - tail
    var = finite_or_none(-(mu + sigma * norm.ppf(tail)))
    cvar = finite_or_none(-(mu - sigma * norm.pdf(norm.ppf(lvl)) / tail))
    return var, cvar


def monte_carlo_var_cvar(
    returns: ArrayLike, level: float, min_obs: int = DEFAULT_MIN_OBS, paths: int = 10_000,
    seed: int = 0, horizon: int = 1,
) -> tuple[float | None, float | None]:
    """Monte Carlo VaR and CVaR: GBM calibrated on the returns, ``paths`` simulated
    ``horizon``-bar outcomes (:func:`backend.risk.montecarlo.mc_var_cvar`, seeded)."""
    r = _clean(returns)
    var, cvar = mc_var_cvar(r, level, horizon=horizon, paths=paths, seed=seed,
                            min_obs=max(int(min_obs), 2))
    return (None, None) if var is None else (finite_or_none(var), finite_or_none(cvar))


def _equity_now(equity: np.ndarray, mark: PortfolioMarked | None) -> float | None:
    """Current equity: the mark's, else the last finite point of the curve."""
    if mark is not None:
        return finite_or_none(mark.equity)
    finite = equity[np.isfinite(equity)]
    return finite_or_none(finite[-1]) if finite.size else None


def _pct(amount: float, equity: float | None) -> float | None:
    """``amount / equity``, ``None`` unless equity is a positive finite number."""
    if equity is None or not equity > 0:
        return None
    return finite_or_none(amount / equity)


def _quote(fraction: float | None, equity: float | None) -> float | None:
    if fraction is None or equity is None:
        return None
    return finite_or_none(fraction * equity)


def risk_figures(
    equity_curve: ArrayLike,
    mark: PortfolioMarked | None,
    levels: Sequence[float] = DEFAULT_LEVELS,
    min_obs: int = DEFAULT_MIN_OBS,
    methods: Sequence[str] = ("historical", "parametric"),
    mc_paths: int = 10_000,
    mc_seed: int = 0,
) -> RiskFigures:
    """Exposure now and VaR / CVaR of the equity curve's bar returns.

    Parameters
    ----------
    equity_curve
        Mark-to-market equity per bar in quote currency, oldest first.
    mark
        The latest :class:`~backend.messages.PortfolioMarked` (positions, marks and
        equity now), or ``None`` before any bar: then no exposure, and equity is the
        curve's last finite point.
    levels
        Confidence levels; one estimate per method (in ``methods`` order) and level.
    min_obs
        Minimum number of returns for an estimate; below it ``var``/``cvar`` are ``None``.
    methods
        Any of ``historical``, ``parametric``, ``monte_carlo`` (:func:`monte_carlo_var_cvar`
        with ``mc_paths`` paths and seed ``mc_seed``).

    Returns
    -------
    RiskFigures
        ``equity`` (quote), ``exposure`` = sum over symbols of ``|quantity * mark|``
        (quote), ``exposure_pct`` = exposure / equity (``None`` unless equity > 0), per
        symbol the same, ``observations`` = number of finite returns used, and
        ``estimates`` (fractions and quote amounts = fraction x current equity).  Never
        raises on empty, flat or NaN input.
    """
    try:
        curve = np.asarray(equity_curve, dtype=float).ravel()
    except (TypeError, ValueError):
        curve = np.empty(0)
    returns = bar_returns(curve)
    equity = _equity_now(curve, mark)

    by_symbol: dict[str, SymbolExposure] = {}
    if mark is not None:
        for symbol, pos in mark.positions.items():
            notional = finite_or_none(abs(pos.quantity * pos.mark)) or 0.0
            by_symbol[symbol] = SymbolExposure(
                quantity=pos.quantity, notional=notional,
                exposure_pct=_pct(notional, equity),
            )
    exposure = float(sum(s.notional for s in by_symbol.values()))

    estimates: list[VaREstimate] = []
    fns = {
        "historical": historical_var_cvar, "parametric": parametric_var_cvar,
        "monte_carlo": lambda r, lv, n: monte_carlo_var_cvar(r, lv, n, mc_paths, mc_seed),
    }
    for method in methods:
        for level in levels:
            var, cvar = fns[method](returns, level, min_obs)
            estimates.append(VaREstimate(
                method=method, level=float(level), var=var, cvar=cvar,
                var_quote=_quote(var, equity), cvar_quote=_quote(cvar, equity),
            ))
    return RiskFigures(
        equity=equity, exposure=exposure, exposure_pct=_pct(exposure, equity),
        by_symbol=by_symbol, observations=int(returns.size), estimates=estimates,
    )
