"""Records of the exchange simulator: markets, orders, trades, errors and Binance's constants.

Plain dataclasses with Binance's JSON shapes both ways (``to_json`` / ``from_json``), so
the server, the admin API and :class:`backend.exchange_sim.admin.SimAdmin` share one model.
Amounts are :class:`~decimal.Decimal`: prices in quote per base, quantities in base units,
commissions in ``commission_asset``; times are ms since the epoch (wall clock for orders
and trades, data time for candles and the market clock).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

D = Decimal
Q8 = D("0.00000001")
#: Candle length in ms per timeframe name.
TF_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}

#: Spot filters of the sample pairs, as Binance published them for these BTC markets
#: (ETHBTC is the exchangeInfo entry ccxt's binance.py quotes; tick and step sizes of the
#: others at the same scale).  minNotional 0.0001 BTC is Binance's BTC-market minimum.
#: Any other pair gets ETH/BTC's.
FILTERS: dict[str, dict[str, str]] = {
    "ETH/BTC": {"tickSize": "0.00000100", "stepSize": "0.00100000", "minQty": "0.00100000"},
    "LTC/BTC": {"tickSize": "0.00000100", "stepSize": "0.01000000", "minQty": "0.01000000"},
    "ADA/BTC": {"tickSize": "0.00000001", "stepSize": "1.00000000", "minQty": "1.00000000"},
    "DASH/BTC": {"tickSize": "0.00000100", "stepSize": "0.00100000", "minQty": "0.00100000"},
}
MIN_NOTIONAL = "0.00010000"
MAX_QTY = "90000000.00000000"
#: Binance's rule for ``newClientOrderId``.
CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
#: Order types the simulator executes (exchangeInfo lists Binance's full spot set).
ORDER_TYPES = ("MARKET", "LIMIT", "STOP_LOSS", "TAKE_PROFIT")
STOP_TYPES = ("STOP_LOSS", "TAKE_PROFIT")
#: Statuses of a working order.
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")


def f8(x: Decimal | float | str) -> str:
    """Binance's 8-decimal string form of a number (``"0.09130000"``)."""
    return f"{D(str(x)).quantize(Q8):f}"


def now_ms() -> int:
    """Wall-clock time in ms since the epoch."""
    return int(time.time() * 1000)


class BinanceError(Exception):
    """A Binance API error: HTTP ``status`` with body ``{"code": code, "msg": msg}``.

    Parameters
    ----------
    code : int
        Binance's error code, e.g. ``-2010``.
    msg : str
        Binance's message text.
    status : int
        HTTP status of the answer (400 unless stated).
    """

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def mandatory(name: str) -> BinanceError:
    """Binance's -1102 for a missing or malformed parameter ``name``."""
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                               "or malformed.")


@dataclass
class Order:
    """One order at the simulated exchange.

    ``price`` is the limit price (0 for MARKET and stop orders), ``stop_price`` the trigger
    of a STOP_LOSS / TAKE_PROFIT order (0 otherwise), quantities in base units,
    ``cum_quote`` the quote spent or received.  ``time_ms``/``update_ms`` are wall-clock
    ms; ``clock_ms`` is the market clock (data time, ms) when the order was placed.
    ``lock_asset``/``lock_amount`` are the funds the working order holds locked;
    ``next_bar`` is the index of the first candle a resting stop has not yet been checked
    against.
    """

    order_id: int
    client_order_id: str
    symbol: str  # exchange id, e.g. ETHBTC
    side: str  # BUY / SELL
    type: str  # MARKET / LIMIT / STOP_LOSS / TAKE_PROFIT
    price: Decimal
    orig_qty: Decimal
    executed_qty: Decimal = D(0)
    cum_quote: Decimal = D(0)
    status: str = "NEW"
    time_ms: int = 0
    update_ms: int = 0
    time_in_force: str = "GTC"
    stop_price: Decimal = D(0)
    clock_ms: int = 0
    working_ms: int = 0
    lock_asset: str = ""
    lock_amount: Decimal = D(0)
    next_bar: int = 0

    @property
    def is_open(self) -> bool:
        """Whether the order is still working (NEW or PARTIALLY_FILLED)."""
        return self.status in OPEN_STATUSES

    def to_json(self) -> dict[str, Any]:
        """Binance's order object (``GET /api/v3/order``)."""
        working = self.type not in STOP_TYPES or self.working_ms > 0
        return {
            "symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
            "clientOrderId": self.client_order_id, "price": f8(self.price),
            "origQty": f8(self.orig_qty), "executedQty": f8(self.executed_qty),
            "cummulativeQuoteQty": f8(self.cum_quote), "status": self.status,
            "timeInForce": self.time_in_force, "type": self.type, "side": self.side,
            "stopPrice": f8(self.stop_price), "icebergQty": "0.00000000", "time": self.time_ms,
            "updateTime": self.update_ms, "isWorking": working,
            "workingTime": (self.working_ms or self.time_ms) if working else -1,
            "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def to_admin_json(self) -> dict[str, Any]:
        """:meth:`to_json` plus the simulator's own fields (admin API ``GET /_sim/state``)."""
        return {**self.to_json(), "marketClockMs": self.clock_ms,
                "lockAsset": self.lock_asset, "lockAmount": f8(self.lock_amount)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Order:
        """An order from :meth:`to_json` / :meth:`to_admin_json` output."""
        return cls(
            order_id=int(d["orderId"]), client_order_id=d["clientOrderId"],
            symbol=d["symbol"], side=d["side"], type=d["type"], price=D(d["price"]),
            orig_qty=D(d["origQty"]), executed_qty=D(d["executedQty"]),
            cum_quote=D(d["cummulativeQuoteQty"]), status=d["status"],
            time_ms=int(d["time"]), update_ms=int(d["updateTime"]),
            time_in_force=d.get("timeInForce", "GTC"), stop_price=D(d.get("stopPrice", "0")),
            clock_ms=int(d.get("marketClockMs", 0)),
            working_ms=max(int(d.get("workingTime", 0)), 0) if d.get("isWorking") else 0,
            lock_asset=d.get("lockAsset", ""), lock_amount=D(d.get("lockAmount", "0")),
        )


@dataclass
class Trade:
    """One execution of one of the account's orders (price quote/base, qty base units,
    commission in ``commission_asset``, time wall-clock ms)."""

    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        """Binance's ``myTrades`` row."""
        return {
            "symbol": self.symbol, "id": self.trade_id, "orderId": self.order_id,
            "orderListId": -1, "price": f8(self.price), "qty": f8(self.qty),
            "quoteQty": f8(self.price * self.qty), "commission": f8(self.commission),
            "commissionAsset": self.commission_asset, "time": self.time_ms,
            "isBuyer": self.side == "BUY", "isMaker": False, "isBestMatch": True,
        }

    def fill_json(self) -> dict[str, Any]:
        """The row of a ``FULL`` order response's ``fills``."""
        return {"price": f8(self.price), "qty": f8(self.qty),
                "commission": f8(self.commission), "commissionAsset": self.commission_asset,
                "tradeId": self.trade_id}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Trade:
        """A trade from :meth:`to_json` output."""
        return cls(int(d["id"]), int(d["orderId"]), d["symbol"],
                   "BUY" if d["isBuyer"] else "SELL", D(d["price"]), D(d["qty"]),
                   D(d["commission"]), d["commissionAsset"], int(d["time"]))


@dataclass
class Market:
    """One spot market with its candles (open times in ms, prices quote/base, volume base)."""

    symbol: str  # BASE/QUOTE
    base: str
    quote: str
    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    filters: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Binance's symbol id (``ETHBTC``)."""
        return self.base + self.quote

    @property
    def step(self) -> Decimal:
        """LOT_SIZE step (base units)."""
        return D(self.filters["stepSize"])

    @property
    def min_qty(self) -> Decimal:
        """LOT_SIZE minimum quantity (base units)."""
        return D(self.filters["minQty"])

    @property
    def tick(self) -> Decimal:
        """PRICE_FILTER tick (quote per base)."""
        return D(self.filters["tickSize"])


@dataclass
class Request:
    """One Binance API request the simulator received (``params`` without the signature).

    ``outcome`` is ``"applied"`` (answered by the exchange, an order placed, ...),
    ``"rejected"`` (answered with a Binance error or 404; ``error`` holds the code),
    ``"faulted"`` (a fault answered or dropped it without applying it) or ``"pending"``
    (still being served); ``fault`` the kind of the fault that acted on it, if any;
    ``status`` the HTTP status sent (``None``: no answer); ``time_ms`` when it arrived
    (wall clock).
    """

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    #: Binance error code of the answer (``None``: success or no answer).
    error: int | None = None
    status: int | None = None
    outcome: str = "pending"
    fault: str | None = None
    time_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        """The request as JSON (admin API ``GET /_sim/requests``)."""
        return {"method": self.method, "path": self.path, "params": dict(self.params),
                "error": self.error, "status": self.status, "outcome": self.outcome,
                "fault": self.fault, "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Request:
        """A request from :meth:`to_json` output."""
        return cls(d["method"], d["path"], dict(d.get("params", {})), d.get("error"),
                   d.get("status"), d.get("outcome", "pending"), d.get("fault"),
                   int(d.get("time_ms", 0)))
