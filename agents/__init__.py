"""The agent processes of the mesh, one module per process (market data, strategy,
compliance, risk, execution, optimizer) on a shared :class:`agents.base.Agent`.

``agents.run`` is the process entry (``python -m agents.run ROLE``); the ``execution_*``
and ``strategy_models`` modules are parts of the execution and strategy agents.  Nothing
is imported here.
"""

__all__ = [
    "base",
    "base_alarms",
    "base_errors",
    "compliance",
    "execution",
    "execution_alarms",
    "execution_failsafe",
    "execution_panic",
    "execution_port",
    "execution_reconcile",
    "execution_records",
    "execution_resolve",
    "execution_watch",
    "market_data",
    "optimizer",
    "portfolio_follower",
    "risk",
    "run",
    "strategy",
    "strategy_models",
]
