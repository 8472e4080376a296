"""Crypto venues through ccxt: the broker client and the mapping of ccxt's orders and trades.

* :mod:`backend.venues.ccxt.client` -- A :class:`~backend.venues.broker.BrokerClient` for
  any crypto exchange ccxt supports;
* :mod:`backend.venues.ccxt.mapping` -- ccxt plumbing of
  :class:`~backend.venues.ccxt.client.CcxtClient`: building the exchange object, reading its
  keys, and mapping ccxt's order and fee structures to ours.

Nothing is imported here: import the submodules.
"""

__all__ = [
    "client",
    "mapping",
]
