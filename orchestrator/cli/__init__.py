"""The ``tradingmesh`` command line (typer): one module per command family.

* :mod:`orchestrator.cli.main` -- The Typer ``app``: every family registered, and the
  small commands (``status``, ``stop``, ``reset``, ``token``, ``strategies``, ``agent``);
* :mod:`orchestrator.cli.up` -- ``tradingmesh up`` and ``tradingmesh run``: options to
  settings, then the orchestrator process (:mod:`orchestrator.node`);
* :mod:`orchestrator.cli.backtest` -- ``tradingmesh backtest``: backtest a strategy over
  OHLCV CSV files;
* :mod:`orchestrator.cli.drill` -- ``tradingmesh drill``: fault drills on the sample data;
* :mod:`orchestrator.cli.exchange_sim` -- ``tradingmesh exchange-sim``: run the exchange
  simulator in the foreground;
* :mod:`orchestrator.cli.models` -- ``tradingmesh model``: train and list the
  ``ml_classifier`` model versions;
* :mod:`orchestrator.cli.optimize` -- ``tradingmesh optimize``: tune a strategy's
  parameters with the GA, walk-forward;
* :mod:`orchestrator.cli.panic` -- ``tradingmesh panic``: halt, cancel and flatten without
  needing Redis or any agent;
* :mod:`orchestrator.cli.report` -- ``tradingmesh report``: the self-evaluation report of
  the mesh's database;
* :mod:`orchestrator.cli.resolve` -- ``tradingmesh resolve`` and ``tradingmesh halts``: the
  symbols halted until a person resolves them;
* :mod:`orchestrator.cli.state` -- Plumbing the sub-commands share: settings with a clear
  error, the running mesh's Redis and database;
* :mod:`orchestrator.cli.tail` -- ``tradingmesh tail``: follow the mesh's pub/sub traffic
  live.

``app`` is re-exported here: the console script is ``tradingmesh =
"orchestrator.cli:app"``, and ``python -m orchestrator.cli`` runs it (``__main__``).
"""

from orchestrator.cli.main import app

__all__ = ["app"]
