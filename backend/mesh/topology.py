"""Which agents a mesh runs and which consumer groups read which stream.

One place for the wiring, used by the orchestrator (what to spawn), by each agent
(which groups to create) and by the market_data agent (which groups must have
caught up before the next bar is released: the replay's back-pressure).  The control
streams (optimizer requests, strategy parameter updates) have their own groups
(:func:`control_groups`), which the back-pressure never waits for.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend import channels
from backend.channels import compact_symbol
from backend.settings import Settings

ROLES = ("market_data", "strategy", "compliance", "risk", "execution", "optimizer")


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """One agent process: its id (``role`` or ``role:SYMBOL``), role and symbol."""

    agent_id: str
    role: str
    symbol: str | None = None

    def argv(self) -> list[str]:
        """Arguments after ``python -m agents.run``."""
        args = [self.role]
        if self.symbol:
            args += ["--symbol", self.symbol]
        return args


def strategy_id(symbol: str) -> str:
    """Agent id of the strategy agent for ``symbol`` (any symbol form)."""
    return f"strategy:{compact_symbol(symbol)}"


def agent_specs(settings: Settings) -> list[AgentSpec]:
    """Every agent of the mesh, in pipeline order (downstream last), then the optimizer
    (off the order path: it only reads the market_data stream's history)."""
    specs = [AgentSpec("market_data", "market_data")]
    specs += [AgentSpec(strategy_id(s), "strategy", s) for s in settings.symbols]
    specs += [
        AgentSpec("compliance", "compliance"),
        AgentSpec("risk", "risk"),
        AgentSpec("execution", "execution"),
        AgentSpec("optimizer", "optimizer"),
    ]
    return specs


def consumer_groups(settings: Settings) -> dict[str, list[str]]:
    """``stream -> [group, ...]`` in pipeline order; a group is named after its agent."""
    return {
        channels.MARKET_DATA: [strategy_id(s) for s in settings.symbols] + ["execution"],
        channels.SIGNALS: ["compliance"],
        channels.SIGNALS_APPROVED: ["risk"],
        channels.ORDERS: ["execution"],
        channels.TRADING_EVENTS: ["compliance", "risk"],
    }


def control_groups(settings: Settings) -> dict[str, list[str]]:
    """``stream -> [group, ...]`` of the agents' control streams (no back-pressure).

    ``optimizer:proposals`` is read by the orchestrator (group ``orchestrator``), which
    is not an agent, so it is not listed here.
    """
    return {
        channels.STRATEGY_PARAMS: [strategy_id(s) for s in settings.symbols],
        channels.OPTIMIZER_REQUESTS: ["optimizer"],
    }


def inputs_of(agent_id: str, settings: Settings) -> list[str]:
    """Streams the agent ``agent_id`` reads through its own consumer group (its control
    stream, if any, first: a command is handled before the bars read with it)."""
    wiring = {**control_groups(settings), **consumer_groups(settings)}
    return [s for s, groups in wiring.items() if agent_id in groups]
