"""The control plane's routes, one ``fastapi.APIRouter`` (``router``) per resource.

* :mod:`orchestrator.api.routes.fixed` -- The fixed paths existing scripts call: a
  symbol's strategy agent, positions, the kill switch;
* :mod:`orchestrator.api.routes.agents` -- Every agent by id: list, inspect, start, stop,
  restart;
* :mod:`orchestrator.api.routes.trading` -- The trading records: orders, fills, round-trip
  trades, signals, equity, P&L;
* :mod:`orchestrator.api.routes.breaker` -- The halt latch: the circuit breaker's state and
  its reset;
* :mod:`orchestrator.api.routes.halts` -- Per-symbol halts: list them, and a person's
  resolution;
* :mod:`orchestrator.api.routes.risk` -- Risk figures: exposure, VaR and CVaR, the VaR
  limit, a forecast band;
* :mod:`orchestrator.api.routes.report` -- The self-evaluation report of the mesh's
  trading;
* :mod:`orchestrator.api.routes.optimizer` -- The optimizer's runs (request, inspect,
  apply), the strategies and the ML models;
* :mod:`orchestrator.api.routes.plumbing` -- The mesh's plumbing: audit log, channel
  statistics, liveness, readiness, metrics.

:func:`orchestrator.api.app.create_app` includes them in this order (the order paths are
matched in).  Nothing is imported here: import the submodules.
"""

__all__ = [
    "agents",
    "breaker",
    "fixed",
    "halts",
    "optimizer",
    "plumbing",
    "report",
    "risk",
    "trading",
]
