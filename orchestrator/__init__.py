"""Supervises the agent processes and serves the control plane: supervisor, kill switch,
REST API, command line (``tradingmesh``) and the fault drills."""
