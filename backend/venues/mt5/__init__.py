"""MetaTrader 5 (FX/CFD): the broker client, the terminal wrapper and the mapping of MT5's
orders, deals and positions.

* :mod:`backend.venues.mt5.client` -- MetaTrader 5 broker client (FX/CFD) over the
  ``MetaTrader5`` package;
* :mod:`backend.venues.mt5.mapping` -- Pure mappings between MetaTrader 5 and our order
  model (no terminal needed);
* :mod:`backend.venues.mt5.terminal` -- The MetaTrader 5 terminal session under
  :class:`~backend.venues.mt5.client.Mt5Client`.

Nothing is imported here: import the submodules.
"""

__all__ = [
    "client",
    "mapping",
    "terminal",
]
