"""Agent process entry point: ``python -m agents.run ROLE [--symbol SYMBOL]``.

The orchestrator starts every agent this way; it can also be used by hand (or by
docker-compose) to run one agent in the foreground.  Exit code 0 on a clean stop,
1 when the agent faulted, 2 on bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from backend.mesh.topology import ROLES, strategy_id
from backend.settings import ConfigError, load_settings


def build_agent(role: str, symbol: str | None, settings):  # noqa: ANN001, ANN201
    """Instantiate the agent for ``role`` (strategy agents need ``symbol``)."""
    if role == "market_data":
        from agents.market_data import MarketDataAgent

        return MarketDataAgent(settings)
    if role == "strategy":
        from agents.strategy import StrategyAgent

        if not symbol:
            raise ConfigError("the strategy agent needs --symbol (e.g. ETH/BTC)")
        match = [s for s in settings.symbols if strategy_id(s) == strategy_id(symbol)]
        if not match:
            raise ConfigError(f"unknown symbol {symbol!r}; configured: {settings.symbols}")
        return StrategyAgent(settings, strategy_id(symbol), symbol=match[0])
    if role == "compliance":
        from agents.compliance import ComplianceAgent

        return ComplianceAgent(settings)
    if role == "risk":
        from agents.risk import RiskAgent

        return RiskAgent(settings)
    if role == "execution":
        from agents.execution import ExecutionAgent

        return ExecutionAgent(settings)
    if role == "optimizer":
        from agents.optimizer import OptimizerAgent

        return OptimizerAgent(settings)
    raise ConfigError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")


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
