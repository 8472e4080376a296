"""Account, orders and trades of the simulated Binance spot exchange, on top of its markets.

Everything is plain Python guarded by one re-entrant lock (:attr:`Book.lock`), so a test
or the admin API can inspect and steer it while the server thread serves requests.  The
candles and the market clock are :class:`backend.exchange_sim.markets.Markets` (the base
class); balances and fee arithmetic are :class:`backend.exchange_sim.account.Account`;
when a resting stop triggers is decided by :mod:`backend.exchange_sim.triggers`.

Prices and fills
    A MARKET order fills immediately, completely, at the **close of the symbol's last
    closed bar** (the last price the market has seen), with a taker fee of ``fee_rate x
    notional`` (in the quote asset, or -- ``fee_asset="base"`` -- a BUY pays in the base
    asset it receives).  With an ``expire`` fault (``fill_ratio``) it fills only that
    part, truncated to the lot step (nothing below ``minQty``), and ends ``EXPIRED``.  A
    LIMIT order rests (never matched) until cancelled; its funds are locked.
Stop orders
    ``STOP_LOSS`` / ``TAKE_PROFIT`` (stop-market, take-profit-market) rest with status
    ``NEW`` and their funds locked (a SELL its base quantity, a BUY ``quantity x
    stopPrice`` of quote), and trigger against the market clock (see
    :mod:`backend.exchange_sim.triggers`): the whole quantity fills at the stop price (or
    the gap open) as one trade with the order's id, status ``FILLED``; when the free
    balance cannot pay it then (its lock released), the order is ``EXPIRED`` with
    nothing filled.  A stop already beyond the last price is refused (-2010 "Order would
    trigger immediately.", as Binance does).  Triggers are evaluated lazily
    (:meth:`Book.settle`), whenever the state is read or changed, so the outcome depends on
    the market clock only, never on the timing of a background task.
Order and trade times
    Wall-clock ms (``time.time()``), not the market clock: the mesh stamps its own records
    with the wall clock.
Client order ids
    ``dup_scope="all"`` (default) refuses a ``newClientOrderId`` used by any earlier order
    (-2010 "Duplicate order sent.").  Real Binance only refuses one of an *open* order
    (``dup_scope="open"``): a blind resend of a filled market order would trade twice.
"""

from __future__ import annotations

import uuid
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from pathlib import Path

from backend.exchange_sim.account import Account
from backend.exchange_sim.markets import Markets
from backend.exchange_sim.model import (
    CLIENT_ID,
    MAX_QTY,
    MIN_NOTIONAL,
    ORDER_TYPES,
    Q8,
    STOP_TYPES,
    BinanceError,
    Market,
    Order,
    Trade,
    mandatory,
    now_ms,
)
from backend.exchange_sim.triggers import beyond, first_trigger

D = Decimal
DUP_SCOPES = ("all", "open")


def _decimal(name: str, value: str) -> Decimal:
    try:
        out = D(value)
    except (InvalidOperation, TypeError):
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal "
                                  "range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.") from None
    if not out.is_finite():
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.")
    return out


class Book(Markets):
    """Markets, market clock, account, orders and trades of one simulated exchange.

    Parameters
    ----------
    data_dir : pathlib.Path
        Directory of ``BASE_QUOTE-<timeframe>.csv`` candle files.
    symbols : list of str
        ``BASE/QUOTE`` markets to serve (each needs its file).
    timeframe : str
        Candle length: ``1m``, ``5m``, ``15m`` or ``1h``.
    balances : dict of str to str, optional
        Initial free balance per asset (default ``{"BTC": "1"}``).
    fee_rate : str
        Taker fee as a fraction of the notional (``"0.001"`` = 0.1%).
    fee_asset : {"quote", "base"}
        Asset a BUY pays its fee in (a SELL always pays in quote).
    start_bar : int
        Bars after the first bar the market clock starts at.
    bars_per_s : float, optional
        Bars the clock moves per second of wall time (``None``/0: only :meth:`advance`).
    dup_scope : {"all", "open"}
        Which earlier orders' client order ids are refused as duplicates.

    Raises
    ------
    backend.marketdata.candles.DataError
        The data directory or a symbol's file is missing or invalid.
    ValueError
        An unknown timeframe, fee asset or duplicate scope, a negative ``start_bar``,
        ``bars_per_s`` or balance.
    """

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
        if dup_scope not in DUP_SCOPES:
            raise ValueError(f"dup_scope must be 'all' or 'open', not {dup_scope!r}")
        super().__init__(data_dir, symbols, timeframe=timeframe, start_bar=start_bar,
                         bars_per_s=bars_per_s)
        self.dup_scope = dup_scope
        self.account = Account([a for m in self.markets.values() for a in (m.base, m.quote)],
                               balances or {"BTC": "1"}, D(fee_rate), fee_asset)
        self.orders: list[Order] = []
        self.trades: list[Trade] = []
        self._stops: list[Order] = []  # resting stop orders, oldest first
        self._next_order = 1000
        self._next_trade = 500

    @property
    def fee_rate(self) -> Decimal:
        """Taker fee as a fraction of the notional."""
        return self.account.fee_rate

    @property
    def fee_asset(self) -> str:
        """``"quote"`` or ``"base"`` (the asset a BUY pays its fee in)."""
        return self.account.fee_asset

    def advance(self, bars: int = 1) -> int:
        """Move the market clock ``bars`` bars on; returns the new clock (ms).  Resting
        stops are evaluated against the bars that closed."""
        with self.lock:
            self.move_clock(bars)
            self.settle()
            return self.clock_ms()

    # ------------------------------------------------------------------ orders
    def find(self, symbol_id: str, order_id: str | None, coid: str | None) -> Order:
        """The order by id or client order id (-2013 if unknown)."""
        with self.lock:
            self.settle()
            for o in reversed(self.orders):
                if o.symbol != symbol_id:
                    continue
                if (order_id is not None and str(o.order_id) == order_id) or (
                    order_id is None and coid is not None and o.client_order_id == coid
                ):
                    return o
        raise BinanceError(-2013, "Order does not exist.")

    def place(
        self, symbol_id: str, side: str, type_: str, qty: str, price: str | None,
        coid: str | None, time_in_force: str | None = None, *,
        stop_price: str | None = None, fill_ratio: float | None = None,
    ) -> tuple[Order, list[Trade]]:
        """Validate and apply a new order.

        MARKET fills at once (only ``fill_ratio`` of it, the rest ``EXPIRED``, when given:
        the ``expire`` fault); LIMIT rests; STOP_LOSS / TAKE_PROFIT rest until triggered.

        Parameters
        ----------
        symbol_id : str
            Binance symbol id (``ETHBTC``).
        side, type_ : str
            ``BUY``/``SELL``; ``MARKET``, ``LIMIT``, ``STOP_LOSS`` or ``TAKE_PROFIT``.
        qty : str
            Quantity in base units.
        price : str or None
            Limit price (quote/base; LIMIT only).
        coid : str or None
            ``newClientOrderId`` (a random ``sim_...`` one when ``None``).
        time_in_force : str or None
            LIMIT only (required there).
        stop_price : str or None
            Trigger price (quote/base; stop types only, required there).
        fill_ratio : float or None
            MARKET only: the fraction that fills before the rest expires.

        Returns
        -------
        tuple of (Order, list of Trade)
            The order and the trades it made now.

        Raises
        ------
        BinanceError
            Binance's code for a refused order (-1013 filters, -1100/-1102 parameters,
            -1116 order type, -1121 symbol, -2010 balance, duplicate or immediate trigger).
        """
        with self.lock:
            self.settle()
            m = self.market(symbol_id)
            if side not in ("BUY", "SELL"):
                raise mandatory("side")
            if type_ not in ORDER_TYPES:
                raise BinanceError(-1116, "Invalid orderType.")
            coid = coid or f"sim_{uuid.uuid4().hex[:22]}"
            if not CLIENT_ID.fullmatch(coid):
                raise BinanceError(-1100, "Illegal characters found in parameter 'newClientOrder"
                                          f"Id'; legal range is '{CLIENT_ID.pattern}'.")
            if any(o.client_order_id == coid and (self.dup_scope == "all" or o.is_open)
                   for o in self.orders):
                raise BinanceError(-2010, "Duplicate order sent.")
            q = _decimal("quantity", qty)
            self._check_lot(m, q)
            px, stop = self._prices(m, side, type_, price, time_in_force, stop_price)
            if q * (stop if type_ in STOP_TYPES else px) < D(MIN_NOTIONAL):
                raise BinanceError(-1013, "Filter failure: NOTIONAL")
            now = now_ms()
            order = Order(self._next_order + 1, coid, symbol_id, side, type_,
                          px if type_ == "LIMIT" else D(0), q, time_ms=now, update_ms=now,
                          time_in_force=time_in_force or "GTC", stop_price=stop,
                          clock_ms=self.clock_ms(), next_bar=self.closed_count(m))
            trades: list[Trade] = []
            if type_ == "MARKET":
                trades = self._fill_market(m, order, px, now, fill_ratio)
            else:
                lock_px = px if type_ == "LIMIT" else stop
                order.lock_asset, order.lock_amount = ((m.quote, (q * lock_px).quantize(Q8))
                                                       if side == "BUY" else (m.base, q))
                self.account.lock(order.lock_asset, order.lock_amount)
                if type_ in STOP_TYPES:
                    self._stops.append(order)
            self._next_order += 1
            self.orders.append(order)
            self.trades.extend(trades)
            return order, trades

    def _prices(self, m: Market, side: str, type_: str, price: str | None,
                time_in_force: str | None, stop_price: str | None) -> tuple[Decimal, Decimal]:
        """``(limit or market price, stop price)`` of a new order, validated."""
        if type_ == "LIMIT":
            if price is None or time_in_force is None:
                raise mandatory("price")
            px = _decimal("price", price)
            if px <= 0 or px % m.tick != 0:
                raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
            return px, D(0)
        px = self.price(m.id)
        if type_ not in STOP_TYPES:
            return px, D(0)
        if stop_price is None:
            raise mandatory("stopPrice")
        stop = _decimal("stopPrice", stop_price)
        if stop <= 0 or stop % m.tick != 0:
            raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
        if beyond(side, type_, px, stop):
            raise BinanceError(-2010, "Order would trigger immediately.")
        return px, stop

    def manual_order(self, symbol: str, side: str, qty: str, price: str | None = None,
                     client_order_id: str | None = None) -> tuple[Order, list[Trade]]:
        """An order placed by another client (a web UI): LIMIT GTC at ``price`` when given,
        else MARKET (fills at once).

        Parameters
        ----------
        symbol : str
            ``BASE/QUOTE`` or the exchange id (``ETHBTC``).
        side : str
            ``BUY`` or ``SELL`` (any case).
        qty, price : str
            Quantity in base units; limit price in quote per base.
        client_order_id : str, optional
            Default: a random ``web_...`` id (not ours: the mesh's start with ``tm-``).

        Raises
        ------
        BinanceError
            As :meth:`place`.
        """
        coid = client_order_id or f"web_{uuid.uuid4().hex[:22]}"
        return self.place(symbol.replace("/", ""), side.upper(),
                          "MARKET" if price is None else "LIMIT", qty, price, coid,
                          None if price is None else "GTC")

    @staticmethod
    def _check_lot(m: Market, q: Decimal) -> None:
        if q < m.min_qty or q > D(MAX_QTY) or (q - m.min_qty) % m.step != 0:
            raise BinanceError(-1013, "Filter failure: LOT_SIZE")

    def _trade(self, order: Order, px: Decimal, qty: Decimal, fee: Decimal, fee_asset: str,
               now: int) -> Trade:
        self._next_trade += 1
        return Trade(self._next_trade, order.order_id, order.symbol, order.side, px, qty, fee,
                     fee_asset, now)

    def _fill_market(self, m: Market, order: Order, px: Decimal, now: int,
                     fill_ratio: float | None) -> list[Trade]:
        q = order.orig_qty
        self.account.require(m, order.side, q, px)
        order.status = "FILLED"
        if fill_ratio is not None and fill_ratio < 1:
            part = (q * D(str(max(fill_ratio, 0.0))) / m.step).to_integral_value(
                rounding=ROUND_DOWN) * m.step
            q = part if part >= m.min_qty else D(0)
            order.status = "EXPIRED"
        if q == 0:
            return []
        cost, fee, fee_asset = self.account.fill(m, order.side, q, px)
        order.executed_qty, order.cum_quote = q, cost
        return [self._trade(order, px, q, fee, fee_asset, now)]

    def cancel(self, symbol_id: str, order_id: str | None, coid: str | None) -> Order:
        """Cancel a working order and release its funds (-2011 if not working)."""
        with self.lock:
            try:
                o = self.find(symbol_id, order_id, coid)
            except BinanceError:
                raise BinanceError(-2011, "Unknown order sent.") from None
            if not o.is_open:
                raise BinanceError(-2011, "Unknown order sent.")
            self._unlock(o)
            o.status, o.update_ms = "CANCELED", now_ms()
            return o

    def _unlock(self, o: Order) -> None:
        if o.lock_amount:
            self.account.release(o.lock_asset, o.lock_amount)
            o.lock_amount = D(0)

    # ------------------------------------------------------------------ stop triggers
    def settle(self) -> list[Order]:
        """Trigger every resting stop whose trigger bar has closed, in (bar time, order id)
        order; returns the orders that triggered (``FILLED`` or ``EXPIRED``)."""
        with self.lock:
            if not any(o.is_open for o in self._stops):
                self._stops.clear()
                return []
            clock = self.clock_ms()
            due: list[tuple[int, int, Order, Decimal]] = []
            for o in self._stops:
                if not o.is_open:
                    continue
                m = self.markets[o.symbol]
                closed = self.closed_count(m, clock)
                hit = first_trigger(m, o.side, o.type, o.stop_price, o.next_bar, closed)
                if hit is None:
                    o.next_bar = max(o.next_bar, closed)
                else:
                    due.append((int(m.time[hit[0]]), o.order_id, o, hit[1]))
            for _, _, o, px in sorted(due, key=lambda d: (d[0], d[1])):
                self._trigger(o, px)
            self._stops = [o for o in self._stops if o.is_open]
            return [d[2] for d in due]

    def _trigger(self, o: Order, px: Decimal) -> None:
        m = self.markets[o.symbol]
        now = now_ms()
        self._unlock(o)
        o.update_ms = o.working_ms = now
        try:
            cost, fee, fee_asset = self.account.fill(m, o.side, o.orig_qty, px)
        except BinanceError:
            o.status = "EXPIRED"
            return
        o.executed_qty, o.cum_quote, o.status = o.orig_qty, cost, "FILLED"
        self.trades.append(self._trade(o, px, o.orig_qty, fee, fee_asset, now))

    # ------------------------------------------------------------------ inspection
    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        """``asset -> (free, locked)`` in units of the asset."""
        with self.lock:
            self.settle()
            return self.account.snapshot()

    def open_orders(self, symbol_id: str | None = None) -> list[Order]:
        """Working orders (of one symbol or all), oldest first."""
        with self.lock:
            self.settle()
            return [o for o in self.orders
                    if o.is_open and (symbol_id is None or o.symbol == symbol_id)]

    def all_orders(self) -> list[Order]:
        """Every order, oldest first (after evaluating triggers)."""
        with self.lock:
            self.settle()
            return list(self.orders)

    def all_trades(self) -> list[Trade]:
        """Every trade of the account, oldest first (after evaluating triggers)."""
        with self.lock:
            self.settle()
            return list(self.trades)
