"""Trading strategies: pure, vectorised signal generators and their registry.

* :mod:`backend.strategies.base` -- the interface (``Strategy``, ``ParamSpec``, signals);
* :mod:`backend.strategies.registry` -- every strategy by its configured name
  (``STRATEGIES``, ``get_strategy``);
* :mod:`backend.strategies.config` -- the configuration models (``StrategyConfig``);
* :mod:`backend.strategies.build` -- the strategy a configuration describes
  (``build_strategy``);
* :mod:`backend.strategies.runner` -- ``StrategyRunner``, bar-by-bar (live) use;
* one module per strategy (``sma_cross``, ``momentum``, ``vwap_momentum``,
  ``rsi_reversion``, ``bollinger_reversion``, ``smc``, ``ml_classifier``), the
  ``combiner`` and the ``regime_gate``.

Nothing is imported here: import the submodules.  The package stays light so that the
configuration models load without the strategies and their numeric libraries (the
command line starts in a fraction of a second).
"""

__all__ = [
    "base",
    "build",
    "config",
    "registry",
    "runner",
]
