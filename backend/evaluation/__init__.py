"""The self-evaluation report: how the mesh traded, by symbol, strategy and regime, and
what the optimizer suggests changing (``GET /api/report``, ``tradingmesh report``).

* :mod:`backend.evaluation.build` -- the report from fills, signals, equity and runs;
* :mod:`backend.evaluation.render` -- the report as Markdown and HTML with charts.

It sits above :mod:`backend.performance` (trades and statistics) and
:mod:`backend.optimizer` (proposals).  Nothing is imported here: import the submodules.
"""

__all__ = ["build", "render"]
