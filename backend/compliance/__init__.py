"""Compliance: the pure rules a signal must pass before risk sees it (daily trade and notional
limits, trading hours, duplicate guard) and their configuration.

* :mod:`backend.compliance.config` -- Configuration of the compliance rules
  (``[compliance]`` in the TOML);
* :mod:`backend.compliance.rules` -- Compliance rules as pure functions (shared by the
  compliance agent and the backtester).

Nothing is imported here: import the submodules.
"""

__all__ = [
    "config",
    "rules",
]
