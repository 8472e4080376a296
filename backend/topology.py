"""Which agents a mesh runs and which consumer groups read which stream.

One place for the wiring, used by the orchestrator (what to spawn), by each agent
(which groups to create) and by the market_data agent (which groups must have
caught up before the next bar is released: the replay's back-pressure).
"""

from __future__ import annotations

from dataclasses import dataclass

from backend import channels
from backend.channels import compact_symbol
from backend.settings import Settings

ROLES = ("market_data", "strategy", "compliance", "risk", "execution")


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
    """Every agent of the mesh, in pipeline order (downstream last)."""
    specs = [AgentSpec("market_data", "market_data")]
    specs += [AgentSpec(strategy_id(s), "strategy", s) for s in settings.symbols]
    specs += [
        AgentSpec("compliance", "compliance"),
        AgentSpec("risk", "risk"),
        AgentSpec("execution", "execution"),
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


def inputs_of(agent_id: str, settings: Settings) -> list[str]:
    """Streams the agent ``agent_id`` reads through its own consumer group."""
    return [s for s, groups in consumer_groups(settings).items() if agent_id in groups]
