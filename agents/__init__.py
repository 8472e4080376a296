"""The agent processes of the mesh, one module per process (market data, strategy,
compliance, risk, execution, optimizer) on a shared :class:`agents.base.Agent`."""
