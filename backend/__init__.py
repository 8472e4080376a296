"""The library of the mesh: messages, bus, rules, strategies, venues, persistence, backtest,
optimizer and the REST contract; imports neither ``agents`` nor ``orchestrator``."""
