"""The fixed paths existing scripts call: a symbol's strategy agent, positions, the kill
switch.

``/api/agents/create?symbol=``, ``/api/agents/status``, ``/api/agents/{symbol}/status``,
``/api/agents/stop/{symbol}``, ``/api/agents/restart/{symbol}``, ``/api/positions`` and
``/api/emergency-stop``, where a symbol may be ``ETH/BTC`` (URL-encoded), ``ETHBTC``,
``ETH-BTC`` or ``ETH_BTC``.  Included first: ``/api/agents/status`` must match before
``/api/agents/{agent_id}`` (:mod:`orchestrator.api.routes.agents`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request

from backend.rest.models import (
    AgentAction,
    AgentInfo,
    AgentList,
    EmergencyStopRequest,
    EmergencyStopResult,
    Positions,
)
from orchestrator.api.deps import READ, WRITE, Control, actor, errors, reader, writer

__all__ = ["router"]

router = APIRouter()


@router.post("/api/agents/create", response_model=AgentAction, dependencies=writer,
             responses=errors(401, 404, 409, 503), tags=["agents (fixed paths)"])
async def create_agent(
    control: Control, symbol: Annotated[str, Query(min_length=1, max_length=32)],
) -> AgentAction:
    """Start the strategy agent of ``symbol`` (per-symbol agent swarm)."""
    return await control.create_strategy(symbol)


@router.get("/api/agents/status", response_model=AgentList, dependencies=reader,
            responses=READ, tags=["agents (fixed paths)"])
async def agents_status(control: Control) -> AgentList:
    """Every agent's status."""
    return await control.agents()


@router.get("/api/agents/{symbol:path}/status", response_model=AgentInfo,
            dependencies=reader, responses=errors(401, 404, 503),
            tags=["agents (fixed paths)"])
async def symbol_status(control: Control, symbol: str) -> AgentInfo:
    """Status of the strategy agent of ``symbol``."""
    return await control.agent(control.strategy_agent_id(symbol))


@router.post("/api/agents/stop/{symbol:path}", response_model=AgentAction,
             dependencies=writer, responses=errors(401, 404, 409, 503),
             tags=["agents (fixed paths)"])
async def stop_symbol(control: Control, symbol: str) -> AgentAction:
    """Stop the strategy agent of ``symbol`` (it stays stopped)."""
    return await control.stop(control.strategy_agent_id(symbol))


@router.post("/api/agents/restart/{symbol:path}", response_model=AgentAction,
             dependencies=writer, responses=errors(401, 404, 503),
             tags=["agents (fixed paths)"])
async def restart_symbol(control: Control, symbol: str) -> AgentAction:
    """Restart the strategy agent of ``symbol``."""
    return await control.restart(control.strategy_agent_id(symbol))


@router.get("/api/positions", response_model=Positions, dependencies=reader,
            responses=READ, tags=["trading"])
async def positions(control: Control) -> Positions:
    """Open positions and account state at the last mark."""
    return await control.positions()


@router.post("/api/emergency-stop", response_model=EmergencyStopResult, dependencies=writer,
             responses=WRITE, tags=["kill switch"])
async def emergency_stop(
    control: Control, request: Request,
    body: Annotated[EmergencyStopRequest | None, Body()] = None,
) -> EmergencyStopResult:
    """Kill switch: latch HALTED, deny new orders, cancel all, flatten all; report."""
    body = body or EmergencyStopRequest(wait_s=control.settings.api.emergency_wait_s)
    return await control.emergency_stop(body.reason, actor(request), body.wait_s)
