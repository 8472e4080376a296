"""Risk: the one home of the risk figures (VaR, CVaR, exposure, portfolio metrics, Monte
Carlo) and of the pure risk rules the risk agent and the backtester share (sizing, caps,
orders in flight, Kelly, the VaR limit), with their configuration.

* :mod:`backend.risk.analytics` -- Everything ``GET /api/risk`` shows, assembled from pure
  pieces (no I/O);
* :mod:`backend.risk.breaker` -- The daily drawdown circuit breaker of the risk rules, as
  pure functions (no I/O);
* :mod:`backend.risk.calibration` -- Calibration of the Monte Carlo models
  (:mod:`backend.risk.montecarlo`) from bar returns;
* :mod:`backend.risk.config` -- Configuration of the risk limits, sizing and VaR limit
  (``[risk]`` in the TOML);
* :mod:`backend.risk.in_flight` -- Orders risk approved that the portfolio does not show
  yet: counted against every limit;
* :mod:`backend.risk.kelly` -- Kelly-fraction position sizing (pure), the alternative to
  fixed-fractional sizing;
* :mod:`backend.risk.metrics` -- Value at Risk, expected shortfall and exposure of the
  account (pure functions, no I/O);
* :mod:`backend.risk.montecarlo` -- Monte Carlo price paths (numpy, vectorised): GBM,
  correlated GBM, two-state regime switching;
* :mod:`backend.risk.portfolio_metrics` -- Portfolio metrics: Sharpe, Sortino, max drawdown,
  beta, exposure, correlation (pure);
* :mod:`backend.risk.portfolio_var` -- VaR and CVaR of a set of positions from the symbols'
  recent returns (pure, no I/O);
* :mod:`backend.risk.portfolio_view` -- The portfolio as the risk rules see it: positions
  and equity marked at a bar (pure);
* :mod:`backend.risk.rules` -- Risk rules as pure functions (shared by the risk agent and
  the backtester);
* :mod:`backend.risk.var_limit` -- Portfolio VaR limit and VaR alerts as pure functions
  (risk agent and backtester).

Nothing is imported here: import the submodules.
"""

__all__ = [
    "analytics",
    "breaker",
    "calibration",
    "config",
    "in_flight",
    "kelly",
    "metrics",
    "montecarlo",
    "portfolio_metrics",
    "portfolio_var",
    "portfolio_view",
    "rules",
    "var_limit",
]
