"""Risk: the one home of the risk figures (VaR, CVaR, exposure, Monte Carlo) and of the pure
risk rules the risk agent and the backtester share (sizing, caps, orders in flight, Kelly,
the VaR limit).

* :mod:`backend.risk.analytics`
* :mod:`backend.risk.calibration`
* :mod:`backend.risk.in_flight`
* :mod:`backend.risk.kelly`
* :mod:`backend.risk.metrics`
* :mod:`backend.risk.montecarlo`
* :mod:`backend.risk.portfolio_var`
* :mod:`backend.risk.rules`
* :mod:`backend.risk.var_limit`

Nothing is imported here: import the submodules.
"""

__all__ = [
    "analytics",
    "calibration",
    "in_flight",
    "kelly",
    "metrics",
    "montecarlo",
    "portfolio_var",
    "rules",
    "var_limit",
]
