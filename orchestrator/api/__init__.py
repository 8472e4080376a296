"""The orchestrator's REST control plane (FastAPI), served inside the orchestrator's loop.

* :mod:`orchestrator.api.app` -- Build the control plane's FastAPI app: its state, error
  handlers and routers;
* :mod:`orchestrator.api.auth` -- Bearer-token authentication of the REST API and where the
  token comes from;
* :mod:`orchestrator.api.deps` -- What the control plane's routes share: the auth
  dependencies, the control plane, the request's actor, the documented error responses and
  the common parameter types;
* :mod:`orchestrator.api.routes` -- The control plane's routes, one ``fastapi.APIRouter``
  per resource;
* :mod:`orchestrator.api.server` -- Serve the control plane (uvicorn) inside the
  orchestrator's own event loop.

Two families of paths: the fixed paths existing scripts call
(:mod:`orchestrator.api.routes.fixed`), where a symbol may be ``ETH/BTC`` (URL-encoded),
``ETHBTC``, ``ETH-BTC`` or ``ETH_BTC``; and a resource-style API for every agent and every
trading record, the optimizer's runs (request, inspect, apply:
:mod:`orchestrator.optimizer_control`) and the strategies.

Nothing is imported here: import the submodules.
"""

__all__ = ["app", "auth", "deps", "routes", "server"]
