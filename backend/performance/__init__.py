"""Performance of a run: round-trip trades and their statistics (Sharpe, Sortino, drawdown).

* :mod:`backend.performance.report` -- The performance report of a run: round-trip trades,
  per-symbol and total statistics.

Nothing is imported here: import the submodules.
"""

__all__ = [
    "report",
]
