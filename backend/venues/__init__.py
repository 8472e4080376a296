"""Venue adapters: one interface (``backend.venues.base.Venue``), several venues.

``paper/`` (the default), ``live`` over a broker client of ``ccxt/``, ``ib/`` or ``mt5/``,
built by ``factory`` from ``config``; ``placement`` and ``ledger`` keep a live venue's
orders exactly-once and its positions a function of applied fills.  Nothing is imported
here.
"""

__all__ = [
    "base",
    "broker",
    "ccxt",
    "config",
    "factory",
    "ib",
    "ledger",
    "live",
    "live_brackets",
    "live_checks",
    "live_orders",
    "live_state",
    "mt5",
    "paper",
    "placement",
    "reconcile",
]
