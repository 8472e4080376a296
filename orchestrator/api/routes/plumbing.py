"""The mesh's plumbing: audit log, channel statistics, liveness, readiness, metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from backend.rest.models import AuditView, ChannelStats, Health, Ready
from orchestrator.api.deps import READ, Control, Limit, MetricsText, errors, reader

__all__ = ["router"]

router = APIRouter()


@router.get("/api/audit", response_model=list[AuditView], dependencies=reader,
            responses=READ, tags=["plumbing"])
async def audit(
    control: Control,
    limit: Limit = 200,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> list[AuditView]:
    """The audit log, newest last (optionally one action, e.g. ``emergency_stop``)."""
    return await control.audit(limit, action)


@router.get("/api/channels", response_model=ChannelStats, dependencies=reader,
            responses=READ, tags=["plumbing"])
async def channel_stats(control: Control) -> ChannelStats:
    """Messages per channel, stream lengths, pending entries per consumer group."""
    return await control.channels()


@router.get("/api/health", response_model=Health, responses=errors(), tags=["plumbing"])
async def health(control: Control) -> Health:
    """Liveness (no token needed)."""
    return control.health()


@router.get("/api/ready", response_model=Ready, dependencies=reader,
            responses={**errors(401), 503: {"model": Ready}}, tags=["plumbing"])
async def ready(control: Control) -> Response:
    """Readiness: Redis reachable and every agent running (503 otherwise)."""
    r = await control.ready()
    return JSONResponse(r.model_dump(mode="json"), status_code=200 if r.ready else 503)


@router.get("/metrics", dependencies=reader, include_in_schema=False)
async def metrics(metrics_text: MetricsText) -> Response:
    """Prometheus exposition format."""
    if metrics_text is None:
        return Response("metrics disabled\n", status_code=404, media_type="text/plain")
    body, content_type = await metrics_text()
    return Response(body, media_type=content_type)
