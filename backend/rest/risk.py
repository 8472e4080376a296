"""REST bodies of the risk analytics (parts of ``GET /api/risk``), re-exported by
:mod:`backend.rest.models`.

Units as in :mod:`backend.rest.models`: money in quote currency, fractions as plain
fractions (0.02 = 2%), times in ns UTC; horizons and windows in bars.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backend.rest.base import ApiModel


class PortfolioMetricsView(ApiModel):
    """Performance and exposure of the account (see :mod:`backend.risk.portfolio_metrics`).

    ``sharpe``/``sortino`` annualised with ``periods_per_year`` from the equity curve's
    ``observations`` bar returns; ``max_drawdown`` a positive fraction; ``beta`` of the
    equity returns to ``benchmark``'s bar returns (``beta_observations`` joint returns);
    exposures gross (``Sum |q p|``) and net (``Sum q p``); ``correlation[a][b]`` of the
    held symbols' bar returns over ``correlation_observations`` joint bars.
    """

    sharpe: float | None = None
    sortino: float | None = None
    max_drawdown: float | None = None
    periods_per_year: float = 105_120.0
    observations: int = 0
    benchmark: str | None = None
    beta: float | None = None
    beta_observations: int = 0
    gross_exposure: float = 0.0
    net_exposure: float = 0.0
    gross_exposure_pct: float | None = None
    net_exposure_pct: float | None = None
    correlation: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    correlation_observations: int = 0


AlertLevel = Literal["off", "ok", "warning", "breach"]


class RiskLimitsView(ApiModel):
    """The configured VaR limit, the portfolio VaR against it, and the risk agent's view.

    ``var_limit`` is a fraction of equity (0 = off); ``var`` the portfolio VaR of the
    open positions by ``var_method`` at ``var_level`` over ``var_horizon`` bars (from the
    last ``var_window`` bar returns), ``ratio = var / var_limit``; ``level`` the alert
    level that ratio gives (``warning`` at ``alert_ratio``, ``breach`` at 1).
    ``agent_*``: what the risk agent last computed (its alert level is the one with
    hysteresis, at mark ``agent_bar_seq``).  Sizing: ``fixed_fractional`` (risk
    ``risk_per_trade`` of equity per trade) or ``kelly`` (``kelly_fraction`` x the Kelly
    fraction, capped at ``kelly_cap`` of equity at risk).
    """

    var_limit: float = 0.0
    var_level: float = 0.99
    var_method: str = "historical"
    var_horizon: int = 1
    var_window: int = 288
    alert_ratio: float = 0.8
    var: float | None = None
    cvar: float | None = None
    ratio: float | None = None
    level: AlertLevel = "off"
    reason: str = ""
    agent_level: AlertLevel | None = None
    agent_var: float | None = None
    agent_ratio: float | None = None
    agent_bar_seq: int | None = None
    sizing: str = "fixed_fractional"
    risk_per_trade: float = 0.01
    kelly_fraction: float = 0.5
    kelly_cap: float = 0.02


class EquityBandView(ApiModel):
    """Monte Carlo forecast band of equity over the next ``steps`` bars.

    ``bands[i][j]`` = the ``quantiles[i]`` quantile of simulated equity (quote) ``j`` bars
    ahead (``j = 0`` is now), from ``paths`` paths of a ``model`` (``gbm`` or
    ``regime``) calibrated on ``observations`` bar returns of the equity curve.
    """

    model: str
    paths: int
    steps: int
    observations: int
    quantiles: list[float]
    bands: list[list[float]]
