"""Agent process entry point: ``python -m agents.run ROLE [--symbol SYMBOL]``.

The orchestrator starts every agent this way; it can also be used by hand (or by
docker-compose) to run one agent in the foreground.  Exit code 0 on a clean stop,
1 when the agent faulted, 2 on bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys

from agents.base import Agent
from backend.mesh.topology import ROLES, strategy_id
from backend.settings import ConfigError, Settings, load_settings

#: role -> (module, class) of its agent; a process imports only its own agent's module.
AGENT_CLASSES: dict[str, tuple[str, str]] = {
    "market_data": ("agents.market_data", "MarketDataAgent"),
    "strategy": ("agents.strategy", "StrategyAgent"),
    "compliance": ("agents.compliance", "ComplianceAgent"),
    "risk": ("agents.risk", "RiskAgent"),
    "execution": ("agents.execution", "ExecutionAgent"),
    "optimizer": ("agents.optimizer", "OptimizerAgent"),
}


def build_agent(role: str, symbol: str | None, settings: Settings) -> Agent:
    """Instantiate the agent for ``role`` (strategy agents need ``symbol``).

    Raises
    ------
    ConfigError
        Unknown role, a strategy agent without ``symbol`` or with an unconfigured one.
    """
    if role not in AGENT_CLASSES:
        raise ConfigError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    module, name = AGENT_CLASSES[role]
    cls = getattr(importlib.import_module(module), name)
    if role != "strategy":
        return cls(settings)
    if not symbol:
        raise ConfigError("the strategy agent needs --symbol (e.g. ETH/BTC)")
    match = [s for s in settings.symbols if strategy_id(s) == strategy_id(symbol)]
    if not match:
        raise ConfigError(f"unknown symbol {symbol!r}; configured: {settings.symbols}")
    return cls(settings, strategy_id(symbol), symbol=match[0])


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the agent and run it until it stops."""
    p = argparse.ArgumentParser(prog="python -m agents.run", description=__doc__)
    p.add_argument("role", choices=ROLES)
    p.add_argument("--symbol", default=None)
    args = p.parse_args(argv)
    try:
        settings = load_settings()
        agent = build_agent(args.role, args.symbol, settings)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s [{agent.agent_id}] %(message)s",
    )
    return asyncio.run(agent.run())


if __name__ == "__main__":
    sys.exit(main())
