"""The halt latch: the circuit breaker's state and its reset (``/api/circuit-breaker``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from backend.rest.models import BreakerState, ResetRequest, ResetResult
from orchestrator.api.deps import READ, WRITE, Control, actor, reader, writer

__all__ = ["router"]

router = APIRouter()


@router.get("/api/circuit-breaker", response_model=BreakerState, dependencies=reader,
            responses=READ, tags=["risk"])
async def breaker(control: Control) -> BreakerState:
    """Halt latch (kill switch / circuit breaker) and today's drawdown vs the limit."""
    return await control.breaker()


@router.post("/api/circuit-breaker/reset", response_model=ResetResult, dependencies=writer,
             responses=WRITE, tags=["risk"])
async def reset_breaker(control: Control, request: Request, body: ResetRequest) -> ResetResult:
    """Clear the halt latch so trading can resume (the reason is audited)."""
    return await control.reset(body.reason, actor(request))
