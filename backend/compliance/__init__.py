"""Compliance: the pure rules a signal must pass before risk sees it (daily trade and notional
limits, trading hours, duplicate guard); the compliance agent and the backtester share them.

* :mod:`backend.compliance.rules`

Nothing is imported here: import the submodules.
"""

__all__ = ["rules"]
