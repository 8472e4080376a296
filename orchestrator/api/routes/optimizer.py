"""The optimizer's runs (request, inspect, apply), the strategies and the ML models.

Each route calls :class:`orchestrator.optimizer_control.OptimizerControl` through the
control plane, or :func:`backend.mesh.model_views.models_view` for ``GET /api/models``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request

from backend.mesh.model_views import models_view
from backend.rest.models import (
    ApplyRequest,
    ApplyResult,
    ModelsView,
    OptimizerRunAccepted,
    OptimizerRunDetail,
    OptimizerRunRequest,
    OptimizerRunView,
    StrategiesView,
)
from orchestrator.api.deps import READ, Control, Limit, RunId, actor, errors, reader, writer

__all__ = ["router"]

router = APIRouter()


@router.get("/api/optimizer/runs", response_model=list[OptimizerRunView],
            dependencies=reader, responses=READ, tags=["optimizer"])
async def optimizer_runs(control: Control, limit: Limit = 100) -> list[OptimizerRunView]:
    """GA runs, oldest first (then those still queued): status, scores, proposal."""
    return await control.optimizer.runs(limit)


@router.post("/api/optimizer/runs", response_model=OptimizerRunAccepted, status_code=202,
             dependencies=writer, responses=errors(400, 401, 404, 503), tags=["optimizer"])
async def start_optimizer_run(control: Control, request: Request,
                              body: OptimizerRunRequest) -> OptimizerRunAccepted:
    """Queue a GA run on the bars the mesh recorded (the optimizer agent runs it)."""
    return await control.optimizer.request_run(body, actor(request))


@router.get("/api/optimizer/runs/{run_id}", response_model=OptimizerRunDetail,
            dependencies=reader, responses=errors(401, 404, 503), tags=["optimizer"])
async def optimizer_run(control: Control, run_id: RunId) -> OptimizerRunDetail:
    """One run: every generation's best / mean / std per fold, folds, proposal."""
    return await control.optimizer.run(run_id)


@router.post("/api/optimizer/runs/{run_id}/apply", response_model=ApplyResult,
             dependencies=writer, responses=errors(400, 401, 404, 409, 503),
             tags=["optimizer"])
async def apply_optimizer_run(
    control: Control, request: Request, run_id: RunId,
    body: Annotated[ApplyRequest | None, Body()] = None,
) -> ApplyResult:
    """Apply a proposed run's parameters to its symbol's strategy agent (hot reload,
    audited; 409 if the run is not proposed or already applied)."""
    body = body or ApplyRequest()
    return await control.optimizer.apply(run_id, actor(request), body.reason)


@router.get("/api/strategies", response_model=StrategiesView, dependencies=reader,
            responses=READ, tags=["optimizer"])
async def strategies(control: Control) -> StrategiesView:
    """The strategy registry and each strategy agent's active parameters."""
    return await control.optimizer.strategies()


@router.get("/api/models", response_model=ModelsView, dependencies=reader,
            responses=READ, tags=["optimizer"])
async def models(control: Control) -> ModelsView:
    """ml_classifier model versions (metadata, CV scores) and each symbol's live model:
    active version, live hit rate, a pending retrained version."""
    return await models_view(control.settings, control.redis)
