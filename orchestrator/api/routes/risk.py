"""Risk figures: exposure, VaR and CVaR, the VaR limit, a forecast band (``/api/risk``)."""

from __future__ import annotations

from fastapi import APIRouter

from backend.rest.models import RiskFigures
from orchestrator.api.deps import READ, Control, reader

__all__ = ["router"]

router = APIRouter()


@router.get("/api/risk", response_model=RiskFigures, dependencies=reader, responses=READ,
            tags=["risk"])
async def risk(control: Control) -> RiskFigures:
    """Exposure, VaR and CVaR (historical, parametric, Monte Carlo; 95% and 99%) of the
    equity curve, the portfolio and each position; portfolio metrics; the VaR limit
    and alert level; a Monte Carlo equity forecast band."""
    return await control.risk()
