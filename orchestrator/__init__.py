"""Supervises the agent processes and serves the control plane: supervisor, kill switch,
REST API, command line (``tradingmesh``) and the fault drills.

* :mod:`orchestrator.node` -- The orchestrator process assembled in one place: mesh,
  supervisor, control plane, API server and dashboard;
* :mod:`orchestrator.mesh` -- Bring a whole mesh up (Redis, database, agents) and take it
  down again;
* :mod:`orchestrator.supervisor` -- The supervisor: spawns every agent as its own OS
  process and keeps it alive;
* :mod:`orchestrator.housekeeping` -- The supervisor's housekeeping of the mesh: the halt
  latch, stream trimming, Redis data loss, halt sync;
* :mod:`orchestrator.orphans` -- Retire agent processes left behind by a previous
  orchestrator;
* :mod:`orchestrator.control` -- The control plane's logic: what every REST endpoint does,
  independent of HTTP;
* :mod:`orchestrator.errors` -- Errors of the control plane, each with its HTTP status;
* :mod:`orchestrator.views` -- Read models of the control plane: database rows and Redis
  state as API bodies;
* :mod:`orchestrator.optimizer_control` -- The optimizer in the control plane: run
  requests, run views, proposals and hot reload;
* :mod:`orchestrator.killswitch` -- Kill switch (emergency stop), the halt latch's reset,
  and its durable mirror;
* :mod:`orchestrator.symbol_halts` -- Per-symbol halts from the control plane;
* :mod:`orchestrator.panic` -- Halt, cancel and flatten with whatever still works;
* :mod:`orchestrator.metrics` -- Prometheus metrics of the mesh;
* :mod:`orchestrator.latency` -- Pipeline latency from the order-path Redis Streams;
* :mod:`orchestrator.dashboard_proc` -- Serve the Streamlit dashboard as a child process;
* :mod:`orchestrator.api` -- The REST control plane (FastAPI): app, auth, dependencies,
  one router per resource, the uvicorn server;
* :mod:`orchestrator.cli` -- The ``tradingmesh`` command line, one module per command
  family;
* :mod:`orchestrator.drills` -- Fault drills: run a whole mesh, inject faults, check the
  books.

Nothing is imported here: import the submodules.
"""

__all__ = [
    "api",
    "cli",
    "control",
    "dashboard_proc",
    "drills",
    "errors",
    "housekeeping",
    "killswitch",
    "latency",
    "mesh",
    "metrics",
    "node",
    "optimizer_control",
    "orphans",
    "panic",
    "supervisor",
    "symbol_halts",
    "views",
]
