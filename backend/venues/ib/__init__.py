"""Interactive Brokers through ib_insync: the broker client, its session and the mapping of IB's
orders, executions and contracts.

* :mod:`backend.venues.ib.client` -- Interactive Brokers broker client (stocks, FX) over
  ``ib_async`` / ``ib_insync``;
* :mod:`backend.venues.ib.mapping` -- Pure mappings between Interactive Brokers
  (``ib_async``/``ib_insync``) and our model;
* :mod:`backend.venues.ib.session` -- The TWS / IB Gateway session under
  :class:`~backend.venues.ib.client.IbClient`.

Nothing is imported here: import the submodules.
"""

__all__ = [
    "client",
    "mapping",
    "session",
]
