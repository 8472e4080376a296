"""Build the control plane's FastAPI app: its state, error handlers and routers.

Routes are thin (:mod:`orchestrator.api.routes`): each validates its input, calls
:class:`orchestrator.control.ControlPlane` and returns a model of
:mod:`backend.rest.models`.  Errors are JSON ``{"detail": ...}`` with the right 4xx (401
token, 404 unknown agent/symbol, 409 conflict, 422 bad input) or 503 (Redis unreachable /
not ready).  Authentication: see :mod:`orchestrator.api.auth` and
:mod:`orchestrator.api.deps`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from orchestrator.api.auth import AuthError
from orchestrator.api.docs import mount_docs
from orchestrator.api.routes import (
    agents,
    breaker,
    fixed,
    halts,
    optimizer,
    plumbing,
    report,
    risk,
    trading,
)
from orchestrator.control import ControlError, ControlPlane

__all__ = ["ROUTERS", "create_app"]

#: The routers in the order their paths are matched (and listed in the OpenAPI schema):
#: the fixed paths first (``/api/agents/status`` before ``/api/agents/{agent_id}``).
ROUTERS = (fixed, agents, trading, breaker, halts, risk, report, optimizer, plumbing)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def create_app(control: ControlPlane, token: str | None, metrics_text: Callable[[], Any] | None
               = None) -> FastAPI:
    """Build the FastAPI app around ``control``.

    Parameters
    ----------
    control
        The running mesh's control plane.
    token
        The bearer token (None: reads open, writes refused with 401).
    metrics_text
        Async callable returning ``(body bytes, content type)`` for ``GET /metrics``.
    """
    app = FastAPI(
        docs_url=None, redoc_url=None,  # /docs with local assets: mount_docs below
        title="tradingmesh control plane",
        version="1",
        description=(
            "Steer a running trading mesh: agents, orders, fills, signals, P&L, risk, the "
            "circuit breaker and the kill switch.  Mutating endpoints need "
            "`Authorization: Bearer <token>`; reads too when a token is configured."
        ),
    )
    app.state.control = control
    app.state.token = token
    app.state.metrics_text = metrics_text

    @app.exception_handler(ControlError)
    async def _control_error(_req: Request, exc: ControlError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(e.get("loc", ())), "message": str(e.get("msg", "invalid"))}
            for e in exc.errors()
        ]
        text = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return JSONResponse({"detail": f"invalid request: {text}", "errors": errors},
                            status_code=422)

    @app.exception_handler(AuthError)
    async def _auth_error(_req: Request, exc: AuthError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    for module in ROUTERS:
        app.include_router(module.router)
    mount_docs(app)
    return app
