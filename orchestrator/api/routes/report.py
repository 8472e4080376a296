"""The self-evaluation report of the mesh's trading (``/api/report``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from backend.rest.models import EvaluationReport
from orchestrator.api.deps import READ, Control, reader

__all__ = ["router"]

router = APIRouter()


@router.get("/api/report", response_model=EvaluationReport, dependencies=reader,
            responses=READ, tags=["risk"])
async def report(
    control: Control,
    since: Annotated[date | None, Query(description="First day (UTC), YYYY-MM-DD.")]
    = None,
) -> EvaluationReport:
    """Self-evaluation: win rate, P&L, drawdown, Sharpe, trade duration, best and worst
    symbols and strategies, regime breakdown, suggested parameter changes."""
    start = None if since is None else int(
        datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp()) * 10**9
    return await control.report(start)
