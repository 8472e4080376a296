"""Performance of a run: round-trip trades and statistics, portfolio metrics (Sharpe, Sortino,
drawdown) and the self-evaluation report.

* :mod:`backend.performance.evaluation`
* :mod:`backend.performance.evaluation_render`
* :mod:`backend.performance.portfolio_metrics`
* :mod:`backend.performance.report`

Nothing is imported here: import the submodules.
"""

__all__ = ["evaluation", "evaluation_render", "portfolio_metrics", "report"]
