"""A simulated Binance spot exchange: the REST API ccxt uses, with fault injection.

Point the real ``ccxt.async_support.binance`` at it (``urls['api'] = sim.ccxt_urls()``,
or ``ccxt.binance(sim.ccxt_config())``) to drill the mesh against an exchange that is late,
down, rate-limited, drops connections or expires orders, or to try the ccxt path locally
without an account.  What it simulates:

* markets from candle files (``BASE_QUOTE-5m.csv``) and a **market clock** in data time
  that moves with wall time (``bars_per_s``) or on request; klines, tickers, exchangeInfo
  with Binance's filters (:mod:`~backend.exchange_sim.markets`);
* a spot account: MARKET orders fill at the last close with a taker fee (in the quote
  asset, or a BUY's in the base asset), LIMIT orders rest, STOP_LOSS / TAKE_PROFIT orders
  rest and trigger against the clock (:mod:`~backend.exchange_sim.book`,
  :mod:`~backend.exchange_sim.account`, :mod:`~backend.exchange_sim.triggers`);
* Binance's signing, ``recvWindow`` and error codes (:mod:`~backend.exchange_sim.server`,
  :mod:`~backend.exchange_sim.routes`);
* faults: late, stall, 500/502/503, 429, drop, expire; counted or at a seeded random rate
  (:mod:`~backend.exchange_sim.faults`);
* an admin API under ``/_sim/`` (:mod:`~backend.exchange_sim.admin_api`) and its client
  :class:`~backend.exchange_sim.admin.SimAdmin`;
* a command line: ``python -m backend.exchange_sim`` / ``tradingmesh exchange-sim``
  (:mod:`~backend.exchange_sim.run`).

See ``docs/venues.md`` ("The exchange simulator").
"""

from backend.exchange_sim.admin import Balance, SimAdmin, SimAdminError, SimState
from backend.exchange_sim.book import Book
from backend.exchange_sim.faults import KINDS, Fault, FaultSet, make_fault
from backend.exchange_sim.model import BinanceError, Market, Order, Request, Trade
from backend.exchange_sim.run import SimOptions, serve
from backend.exchange_sim.server import (
    DEFAULT_DATA,
    SAMPLE_SYMBOLS,
    TEST_KEY,
    TEST_SECRET,
    ExchangeSim,
)

__all__ = [
    "DEFAULT_DATA",
    "KINDS",
    "SAMPLE_SYMBOLS",
    "TEST_KEY",
    "TEST_SECRET",
    "Balance",
    "BinanceError",
    "Book",
    "ExchangeSim",
    "Fault",
    "FaultSet",
    "Market",
    "Order",
    "Request",
    "SimAdmin",
    "SimAdminError",
    "SimOptions",
    "SimState",
    "Trade",
    "make_fault",
    "serve",
]
