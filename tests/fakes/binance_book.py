"""State of the fake Binance spot exchange: markets, candles and clock, account, orders.

Test-only code, used by :mod:`fakes.binance` (the HTTP side).  Everything is plain Python
guarded by one lock, so the test thread can inspect and steer it while the server thread
serves requests.

Market clock
    The exchange's "now" for market data is a time in the sample data (2018), in ms: bars
    with ``open_time + timeframe <= clock`` are closed; the bar with ``open_time <= clock <
    open_time + timeframe`` is in progress (served by ``klines`` as a partial candle, as
    Binance does).  The clock starts ``start_bar`` bars after the first bar and moves by
    :meth:`Book.advance` or, with ``bars_per_s``, by one bar every ``1 / bars_per_s`` s of
    wall time (capped at the end of the data).
Prices
    A MARKET order fills immediately, completely, at the **close of the symbol's last
    closed bar** (the last price the market has seen), with a taker fee of
    ``fee_rate x notional``: in the quote asset by default (as when fees are paid from the
    quote balance), or -- ``fee_asset="base"`` -- a buy pays in the base asset it receives
    (Binance's default without BNB).  A LIMIT order rests (never matched) until cancelled;
    its funds are locked.
Order and trade times
    Wall-clock ms (``time.time()``), not the market clock: the mesh stamps its own records
    with the wall clock.
Client order ids
    ``dup_scope="all"`` (default) refuses a ``newClientOrderId`` used by any earlier order
    (-2010 "Duplicate order sent.").  Real Binance only refuses one of an *open* order
    (``dup_scope="open"``): a blind resend of a filled market order would trade twice.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import numpy as np

from backend.marketdata import load_dir

D = Decimal
Q8 = D("0.00000001")
TF_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}

#: Spot filters of the sample pairs, as Binance published them for these BTC markets
#: (ETHBTC is the exchangeInfo entry ccxt's binance.py quotes; tick and step sizes of the
#: others at the same scale).  minNotional 0.0001 BTC is Binance's BTC-market minimum.
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


def f8(x: Decimal | float) -> str:
    """Binance's 8-decimal string form of a number."""
    return f"{D(str(x)).quantize(Q8):f}"


class BinanceError(Exception):
    """A Binance API error: HTTP ``status`` with body ``{"code": code, "msg": msg}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


@dataclass
class Order:
    """One order at the fake exchange (Decimal amounts)."""

    order_id: int
    client_order_id: str
    symbol: str  # exchange id, e.g. ETHBTC
    side: str  # BUY / SELL
    type: str  # MARKET / LIMIT
    price: Decimal
    orig_qty: Decimal
    executed_qty: Decimal = D(0)
    cum_quote: Decimal = D(0)
    status: str = "NEW"
    time_ms: int = 0
    update_ms: int = 0
    time_in_force: str = "GTC"

    def to_json(self) -> dict:
        """Binance's order object (``GET /api/v3/order``)."""
        return {
            "symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
            "clientOrderId": self.client_order_id, "price": f8(self.price),
            "origQty": f8(self.orig_qty), "executedQty": f8(self.executed_qty),
            "cummulativeQuoteQty": f8(self.cum_quote), "status": self.status,
            "timeInForce": self.time_in_force, "type": self.type, "side": self.side,
            "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": self.time_ms,
            "updateTime": self.update_ms, "isWorking": True, "workingTime": self.time_ms,
            "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER",
        }


@dataclass
class Trade:
    """One execution of one of the account's orders."""

    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int

    def to_json(self) -> dict:
        """Binance's ``myTrades`` row."""
        return {
            "symbol": self.symbol, "id": self.trade_id, "orderId": self.order_id,
            "orderListId": -1, "price": f8(self.price), "qty": f8(self.qty),
            "quoteQty": f8(self.price * self.qty), "commission": f8(self.commission),
            "commissionAsset": self.commission_asset, "time": self.time_ms,
            "isBuyer": self.side == "BUY", "isMaker": False, "isBestMatch": True,
        }


@dataclass
class Market:
    """One spot market with its candles (times in ms)."""

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


class Book:
    """Markets, market clock, balances, orders and trades of one fake account."""

    def __init__(
        self,
        data_dir: Path,
        symbols: list[str],
        *,
        timeframe: str = "5m",
        balances: dict[str, str] | None = None,
        fee_rate: str = "0.001",
        fee_asset: str = "quote",
        start_bar: int = 60,
        bars_per_s: float | None = None,
        dup_scope: str = "all",
    ) -> None:
        self.lock = threading.RLock()
        self.tf_ms = TF_MS[timeframe]
        self.fee_rate = D(fee_rate)
        self.fee_asset = fee_asset
        self.dup_scope = dup_scope
        self.markets: dict[str, Market] = {}
        for sym, c in load_dir(data_dir, symbols, timeframe).items():
            base, quote = sym.split("/")
            self.markets[base + quote] = Market(
                sym, base, quote, c.time // 1_000_000, c.open, c.high, c.low, c.close,
                c.volume, FILTERS.get(sym, FILTERS["ETH/BTC"]),
            )
        first = min(int(m.time[0]) for m in self.markets.values())
        self.end_ms = max(int(m.time[-1]) for m in self.markets.values()) + self.tf_ms
        self._clock0 = first + start_bar * self.tf_ms
        self._bars_per_s = bars_per_s
        self._t0 = time.monotonic()
        self.free: dict[str, Decimal] = {a: D(0) for m in self.markets.values()
                                         for a in (m.base, m.quote)}
        self.locked: dict[str, Decimal] = {a: D(0) for a in self.free}
        for asset, amount in (balances or {"BTC": "1"}).items():
            self.free[asset] = D(amount)
            self.locked.setdefault(asset, D(0))
        self.orders: list[Order] = []
        self.trades: list[Trade] = []
        self._next_order = 1000
        self._next_trade = 500

    # ------------------------------------------------------------------ clock, prices
    def clock_ms(self) -> int:
        """The market clock (ms, data time)."""
        with self.lock:
            t = self._clock0
            if self._bars_per_s:
                t += int((time.monotonic() - self._t0) * self._bars_per_s) * self.tf_ms
            return min(t, self.end_ms)

    def advance(self, bars: int = 1) -> int:
        """Move the market clock ``bars`` bars on; returns the new clock (ms)."""
        with self.lock:
            self._clock0 += bars * self.tf_ms
            return self.clock_ms()

    def closed_count(self, m: Market, clock: int | None = None) -> int:
        """How many of ``m``'s bars are closed at ``clock``."""
        t = self.clock_ms() if clock is None else clock
        return int(np.searchsorted(m.time, t - self.tf_ms, side="right"))

    def price(self, symbol_id: str) -> Decimal:
        """Current price: close of the last closed bar (the first open before any)."""
        m = self.markets[symbol_id]
        n = self.closed_count(m)
        return D(str(float(m.close[n - 1] if n else m.open[0])))

    def klines(self, symbol_id: str, start: int | None, end: int | None, limit: int) -> list:
        """Binance kline rows: closed bars plus the bar in progress (partial: O=H=L=C=open,
        volume 0), oldest first, ``startTime <= open time <= endTime``."""
        m = self.markets[symbol_id]
        clock = self.clock_ms()
        n = int(np.searchsorted(m.time, clock, side="right"))  # bars opened by now
        lo = 0 if start is None else int(np.searchsorted(m.time, start, side="left"))
        hi = n if end is None else min(n, int(np.searchsorted(m.time, end, side="right")))
        rows = []
        for i in range(lo, min(hi, lo + limit)):
            t = int(m.time[i])
            closed = t + self.tf_ms <= clock
            o = float(m.open[i])
            h, lw, c, v = ((float(m.high[i]), float(m.low[i]), float(m.close[i]),
                            float(m.volume[i])) if closed else (o, o, o, 0.0))
            rows.append([t, f8(o), f8(h), f8(lw), f8(c), f8(v), t + self.tf_ms - 1,
                         f8(D(str(v)) * D(str(c))), 10, "0.00000000", "0.00000000", "0"])
        return rows

    # ------------------------------------------------------------------ orders
    def find(self, symbol_id: str, order_id: str | None, coid: str | None) -> Order:
        """The order by id or client order id (-2013 if unknown)."""
        with self.lock:
            for o in reversed(self.orders):
                if o.symbol != symbol_id:
                    continue
                if (order_id is not None and str(o.order_id) == order_id) or (
                    order_id is None and coid is not None and o.client_order_id == coid
                ):
                    return o
        raise BinanceError(-2013, "Order does not exist.")

    def market(self, symbol_id: str | None) -> Market:
        """The market ``symbol_id`` (-1121 if unknown)."""
        if symbol_id not in self.markets:
            raise BinanceError(-1121, "Invalid symbol.")
        return self.markets[symbol_id]

    def place(
        self, symbol_id: str, side: str, type_: str, qty: str, price: str | None,
        coid: str | None, time_in_force: str | None = None,
    ) -> tuple[Order, list[Trade]]:
        """Validate and apply a new order; MARKET fills at once, LIMIT rests."""
        with self.lock:
            m = self.market(symbol_id)
            if side not in ("BUY", "SELL"):
                raise BinanceError(-1102, "Mandatory parameter 'side' was not sent, was "
                                          "empty/null, or malformed.")
            if type_ not in ("MARKET", "LIMIT"):
                raise BinanceError(-1116, "Invalid orderType.")
            coid = coid or f"fake_{uuid.uuid4().hex[:22]}"
            if not CLIENT_ID.fullmatch(coid):
                raise BinanceError(-1100, "Illegal characters found in parameter 'newClientOrder"
                                          f"Id'; legal range is '{CLIENT_ID.pattern}'.")
            if any(o.client_order_id == coid and (self.dup_scope == "all" or o.status in (
                    "NEW", "PARTIALLY_FILLED")) for o in self.orders):
                raise BinanceError(-2010, "Duplicate order sent.")
            q = D(qty)
            self._check_lot(m, q)
            if type_ == "LIMIT":
                if price is None or time_in_force is None:
                    raise BinanceError(-1102, "Mandatory parameter 'price' was not sent, "
                                              "was empty/null, or malformed.")
                px = D(price)
                tick = D(m.filters["tickSize"])
                if px <= 0 or px % tick != 0:
                    raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
            else:
                px = self.price(symbol_id)
            if q * px < D(MIN_NOTIONAL):
                raise BinanceError(-1013, "Filter failure: NOTIONAL")
            now = int(time.time() * 1000)
            self._next_order += 1
            order = Order(self._next_order, coid, symbol_id, side, type_,
                          px if type_ == "LIMIT" else D(0), q, time_ms=now, update_ms=now,
                          time_in_force=time_in_force or "GTC")
            if type_ == "LIMIT":
                self._lock_funds(m, side, q, px)
                self.orders.append(order)
                return order, []
            trade = self._fill_market(m, order, px, now)
            self.orders.append(order)
            self.trades.append(trade)
            return order, [trade]

    def _check_lot(self, m: Market, q: Decimal) -> None:
        step, min_q = D(m.filters["stepSize"]), D(m.filters["minQty"])
        if q < min_q or q > D(MAX_QTY) or (q - min_q) % step != 0:
            raise BinanceError(-1013, "Filter failure: LOT_SIZE")

    def _lock_funds(self, m: Market, side: str, q: Decimal, px: Decimal) -> None:
        asset, need = (m.quote, (q * px).quantize(Q8)) if side == "BUY" else (m.base, q)
        if self.free[asset] < need:
            raise BinanceError(-2010, "Account has insufficient balance for requested action.")
        self.free[asset] -= need
        self.locked[asset] += need

    def _fill_market(self, m: Market, order: Order, px: Decimal, now: int) -> Trade:
        q = order.orig_qty
        cost = (q * px).quantize(Q8, rounding=ROUND_DOWN)
        if order.side == "BUY" and self.fee_asset == "base":
            fee, fee_asset = (q * self.fee_rate).quantize(Q8), m.base
        else:
            fee, fee_asset = (cost * self.fee_rate).quantize(Q8), m.quote
        if order.side == "BUY":
            need = cost + (fee if fee_asset == m.quote else 0)
            if self.free[m.quote] < need:
                raise BinanceError(-2010, "Account has insufficient balance for requested "
                                          "action.")
            self.free[m.quote] -= need
            self.free[m.base] += q - (fee if fee_asset == m.base else 0)
        else:
            if self.free[m.base] < q:
                raise BinanceError(-2010, "Account has insufficient balance for requested "
                                          "action.")
            self.free[m.base] -= q
            self.free[m.quote] += cost - fee
        order.executed_qty, order.cum_quote, order.status = q, cost, "FILLED"
        self._next_trade += 1
        return Trade(self._next_trade, order.order_id, order.symbol, order.side, px, q, fee,
                     fee_asset, now)

    def cancel(self, symbol_id: str, order_id: str | None, coid: str | None) -> Order:
        """Cancel a working order and release its funds (-2011 if not working)."""
        with self.lock:
            try:
                o = self.find(symbol_id, order_id, coid)
            except BinanceError:
                raise BinanceError(-2011, "Unknown order sent.") from None
            if o.status not in ("NEW", "PARTIALLY_FILLED"):
                raise BinanceError(-2011, "Unknown order sent.")
            m = self.markets[symbol_id]
            rest = o.orig_qty - o.executed_qty
            asset, amount = ((m.quote, (rest * o.price).quantize(Q8)) if o.side == "BUY"
                             else (m.base, rest))
            self.locked[asset] -= amount
            self.free[asset] += amount
            o.status, o.update_ms = "CANCELED", int(time.time() * 1000)
            return o

    # ------------------------------------------------------------------ inspection
    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        """``asset -> (free, locked)``."""
        with self.lock:
            return {a: (self.free[a], self.locked[a]) for a in self.free}

    def open_orders(self, symbol_id: str | None = None) -> list[Order]:
        """Working orders (of one symbol or all)."""
        with self.lock:
            return [o for o in self.orders if o.status in ("NEW", "PARTIALLY_FILLED")
                    and (symbol_id is None or o.symbol == symbol_id)]
