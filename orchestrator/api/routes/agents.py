"""Every agent by id: list, inspect, start, stop, restart (``/api/agents``)."""

from __future__ import annotations

from fastapi import APIRouter

from backend.rest.models import AgentAction, AgentInfo, AgentList
from orchestrator.api.deps import READ, Control, errors, reader, writer

__all__ = ["router"]

router = APIRouter()


@router.get("/api/agents", response_model=AgentList, dependencies=reader, responses=READ,
            tags=["agents"])
async def list_agents(control: Control) -> AgentList:
    """Every agent: state, pid, uptime, restarts, heartbeat age, messages, last error."""
    return await control.agents()


@router.get("/api/agents/{agent_id}", response_model=AgentInfo, dependencies=reader,
            responses=errors(401, 404, 503), tags=["agents"])
async def get_agent(control: Control, agent_id: str) -> AgentInfo:
    """One agent by id (``market_data``, ``strategy:ETHBTC``, ``risk``, ...)."""
    return await control.agent(agent_id)


@router.post("/api/agents/{agent_id}/start", response_model=AgentAction, dependencies=writer,
             responses=errors(401, 404, 409, 503), tags=["agents"])
async def start_agent(control: Control, agent_id: str) -> AgentAction:
    """Start a stopped agent."""
    return await control.start(agent_id)


@router.post("/api/agents/{agent_id}/stop", response_model=AgentAction, dependencies=writer,
             responses=errors(401, 404, 409, 503), tags=["agents"])
async def stop_agent(control: Control, agent_id: str) -> AgentAction:
    """Stop an agent (SIGTERM, then SIGKILL after the grace period); it stays stopped."""
    return await control.stop(agent_id)


@router.post("/api/agents/{agent_id}/restart", response_model=AgentAction,
             dependencies=writer, responses=errors(401, 404, 503), tags=["agents"])
async def restart_agent(control: Control, agent_id: str) -> AgentAction:
    """Restart an agent now (counts as a restart)."""
    return await control.restart(agent_id)
