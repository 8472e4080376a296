"""The REST contract: typed bodies of the orchestrator's API, a leaf (it imports nothing else
of ``backend``), the only part of ``backend`` the dashboard imports.

* :mod:`backend.rest.base` -- Base classes of the REST API's bodies
  (:mod:`backend.rest.models`);
* :mod:`backend.rest.halts` -- REST bodies of the per-symbol halts (``/api/halt/symbols``;
  see :mod:`backend.mesh.symbol_halt`);
* :mod:`backend.rest.ml` -- REST bodies of ``GET /api/models`` (re-exported by
  :mod:`backend.rest.models`);
* :mod:`backend.rest.models` -- Typed bodies of the orchestrator's REST API (shown in its
  OpenAPI schema);
* :mod:`backend.rest.optimizer` -- REST bodies of the optimizer and strategy endpoints
  (re-exported by :mod:`backend.rest.models`);
* :mod:`backend.rest.report` -- REST body of the self-evaluation report (``GET
  /api/report``, ``tradingmesh report``), re-exported by :mod:`backend.rest.models`;
* :mod:`backend.rest.risk` -- REST bodies of the risk analytics (parts of ``GET
  /api/risk``), re-exported by :mod:`backend.rest.models`;
* :mod:`backend.rest.trades` -- REST body of one round-trip trade (``GET /api/trades``, the
  report, the dashboard).

Nothing is imported here: import the submodules.
"""

__all__ = [
    "base",
    "halts",
    "ml",
    "models",
    "optimizer",
    "report",
    "risk",
    "trades",
]
