"""State of the fake Binance exchange: re-export of the exchange simulator's book and records.

See :mod:`backend.exchange_sim.book` (orders, account), :mod:`backend.exchange_sim.markets`
(candles, market clock) and :mod:`backend.exchange_sim.model` (records, filters).
"""

from __future__ import annotations

from backend.exchange_sim.book import Book
from backend.exchange_sim.model import (
    CLIENT_ID,
    FILTERS,
    MAX_QTY,
    MIN_NOTIONAL,
    Q8,
    TF_MS,
    BinanceError,
    D,
    Market,
    Order,
    Trade,
    f8,
)

__all__ = ["CLIENT_ID", "FILTERS", "MAX_QTY", "MIN_NOTIONAL", "Q8", "TF_MS", "BinanceError",
           "Book", "D", "Market", "Order", "Trade", "f8"]
