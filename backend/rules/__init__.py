"""Pure decision rules of the order path: compliance, risk sizing and limits, orders in
flight, Kelly sizing and the VaR limit (no I/O: the agents and the simulator share them)."""
