"""A fake ``MetaTrader5`` module: an in-memory terminal + trade server for the MT5 client.

:class:`FakeMt5` has the module's constants and functions (``initialize``,
``order_send``, ``orders_get``, ``history_deals_get``, ...) with results as namedtuples
carrying the real field names.  It behaves like a terminal connected to a broker:

* an account (USD, netting by default) and symbols ``EURUSD``/``GBPUSD`` (FX, 100 000
  base units per lot) and ``US500`` (an index CFD, 1 unit per lot);
* ticks the test moves (:meth:`FakeMt5.set_tick`); market deals at ask/bid with a
  commission per lot; volume, money and market-closed checks with the real retcodes;
* pending stop orders (``TRADE_ACTION_PENDING``, ``ORDER_TYPE_BUY_STOP``/``SELL_STOP``),
  checked like a server does (wrong side of the market, too many digits:
  ``INVALID_PRICE``; inside ``stops_level`` points: ``INVALID_STOPS``; an expiration the
  symbol does not allow: ``INVALID_EXPIRATION``), rest until removed or until
  :meth:`FakeMt5.set_tick` moves the bid (sell stop) / ask (buy stop) through them: a
  deal at that tick with the order's ticket, magic and comment; the order is FILLED;
* scripted outcomes for the next ``order_send`` (:meth:`FakeMt5.script`): ``requote``,
  ``price_changed``, ``partial`` (``DONE_PARTIAL``: IOC remainder cancelled, RETURN
  remainder left working), ``timeout`` (the deal happens, the answer is ``TIMEOUT``),
  ``lost_before`` / ``lost_after`` (the terminal drops: ``order_send`` returns ``None``,
  ``last_error()`` is ``(-10004, 'No IPC connection')``; with ``lost_after`` the deal
  reached the server first); for a stop order ``timeout`` places it and answers
  ``TIMEOUT``; for a removal ``triggered`` fires the stop just before the removal
  arrives (then refused) and ``frozen`` refuses it (``FROZEN``: too near the market);
* terminal loss (:meth:`lose_terminal`) and reconnection (``initialize`` again; may be
  refused ``refuse_init`` times), history of orders and deals, external orders.

Prices in quote currency per base unit; volumes in lots; times in seconds of the
server clock (``clock``, UTC here).
"""

from __future__ import annotations

import fnmatch
import itertools
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from tests.fakes.mt5_types import (
    AccountInfo,
    OrderSendResult,
    SymbolInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradeRequest,
)
from tests.fakes.mt5_types import ServerOrder as _Order
from tests.fakes.mt5_types import ServerSymbol as _Symbol


class FakeMt5:
    """The fake module (use one instance per test)."""

    TRADE_ACTION_DEAL, TRADE_ACTION_PENDING, TRADE_ACTION_REMOVE = 1, 5, 8
    ORDER_TYPE_BUY, ORDER_TYPE_SELL, ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_SELL_LIMIT = 0, 1, 2, 3
    ORDER_TYPE_BUY_STOP, ORDER_TYPE_SELL_STOP = 4, 5
    ORDER_FILLING_FOK, ORDER_FILLING_IOC, ORDER_FILLING_RETURN = 0, 1, 2
    ORDER_TIME_GTC, ORDER_TIME_DAY = 0, 1
    SYMBOL_EXPIRATION_GTC, SYMBOL_EXPIRATION_DAY = 1, 2
    (ORDER_STATE_STARTED, ORDER_STATE_PLACED, ORDER_STATE_CANCELED, ORDER_STATE_PARTIAL,
     ORDER_STATE_FILLED, ORDER_STATE_REJECTED, ORDER_STATE_EXPIRED) = range(7)
    ORDER_STATE_REQUEST_ADD, ORDER_STATE_REQUEST_MODIFY, ORDER_STATE_REQUEST_CANCEL = 7, 8, 9
    DEAL_TYPE_BUY, DEAL_TYPE_SELL, DEAL_TYPE_BALANCE = 0, 1, 2
    DEAL_ENTRY_IN, DEAL_ENTRY_OUT, DEAL_ENTRY_INOUT = 0, 1, 2
    POSITION_TYPE_BUY, POSITION_TYPE_SELL = 0, 1
    ACCOUNT_MARGIN_MODE_RETAIL_NETTING, ACCOUNT_MARGIN_MODE_RETAIL_HEDGING = 0, 2
    TRADE_RETCODE_REQUOTE = 10004
    TRADE_RETCODE_REJECT = 10006
    TRADE_RETCODE_CANCEL = 10007
    TRADE_RETCODE_PLACED = 10008
    TRADE_RETCODE_DONE = 10009
    TRADE_RETCODE_DONE_PARTIAL = 10010
    TRADE_RETCODE_ERROR = 10011
    TRADE_RETCODE_TIMEOUT = 10012
    TRADE_RETCODE_INVALID = 10013
    TRADE_RETCODE_INVALID_VOLUME = 10014
    TRADE_RETCODE_INVALID_PRICE = 10015
    TRADE_RETCODE_INVALID_STOPS = 10016
    TRADE_RETCODE_MARKET_CLOSED = 10018
    TRADE_RETCODE_NO_MONEY = 10019
    TRADE_RETCODE_PRICE_CHANGED = 10020
    TRADE_RETCODE_PRICE_OFF = 10021
    TRADE_RETCODE_INVALID_EXPIRATION = 10022
    TRADE_RETCODE_TOO_MANY_REQUESTS = 10024
    TRADE_RETCODE_FROZEN = 10029
    TRADE_RETCODE_INVALID_FILL = 10030
    TRADE_RETCODE_CONNECTION = 10031
    RES_S_OK, RES_E_AUTH_FAILED, RES_E_INTERNAL_FAIL_CONNECT = 1, -6, -10004

    def __init__(self, *, login: int = 5_001_234, password: str = "s3cret",
                 server: str = "Fake-Demo", balance: float = 100_000.0, leverage: int = 100,
                 commission_per_lot: float = 7.0, hedging: bool = False) -> None:
        self.login_id, self._password, self.server = login, password, server
        self.balance, self.leverage, self.commission_per_lot = balance, leverage, commission_per_lot
        self.margin_mode = 2 if hedging else 0
        self.clock = time.time()  # the server clock (s): real time, +1 ms at least per deal
        self.alive = True  # terminal process reachable over IPC
        self.initialized = False
        self.refuse_init = 0  # next N initialize() calls fail (terminal still starting)
        self.init_calls: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []  # every order_send request that reached the server
        self._err: tuple[int, str] = (1, "Success")
        self._script: deque[tuple[str, float]] = deque()
        self._ids = itertools.count(1000)
        self.symbols: dict[str, _Symbol] = {
            "EURUSD": _Symbol("EURUSD", 1e5, 0.01, 50.0, 0.01, 5, 1.1, 1.1001, "EUR", "USD"),
            "GBPUSD": _Symbol("GBPUSD", 1e5, 0.01, 50.0, 0.01, 5, 1.25, 1.25015, "GBP", "USD"),
            "US500": _Symbol("US500", 1, 0.1, 100.0, 0.1, 1, 4500.0, 4500.5, "USD", "USD"),
        }
        self.orders: dict[int, _Order] = {}
        self.deals: list[TradeDeal] = []
        self.positions: dict[int, list] = {}  # ticket -> [symbol, signed volume, price, magic, cmt]

    # -- test controls --------------------------------------------------------------------
    def set_tick(self, symbol: str, bid: float, ask: float) -> None:
        """Move the market of ``symbol``; pending stops it reaches trigger (see module doc)."""
        s = self.symbols[symbol]
        s.bid, s.ask = bid, ask
        for o in list(self.orders.values()):
            if o.symbol == symbol and o.state == self.ORDER_STATE_PLACED and (
                    o.type == self.ORDER_TYPE_SELL_STOP and bid <= o.price
                    or o.type == self.ORDER_TYPE_BUY_STOP and ask >= o.price):
                self._fire(o)

    def _fire(self, o: _Order) -> None:
        """A pending stop triggers: a deal of its volume at the current tick."""
        self._deal(o, round(o.volume - o.filled, 8))
        o.state = self.ORDER_STATE_FILLED

    def script(self, *outcomes: str, fraction: float = 0.5) -> None:
        """Queue outcomes for the next ``order_send`` calls (see module doc)."""
        self._script.extend((o, fraction) for o in outcomes)

    def lose_terminal(self) -> None:
        """The terminal process goes away: every call fails until ``initialize`` again."""
        self.alive, self.initialized = False, False

    def add_external_order(self, symbol: str, side: int, volume: float, price: float,
                           magic: int = 0, comment: str = "manual") -> int:
        """A pending limit order placed by hand or by another EA."""
        o = _Order(next(self._ids), symbol, side + 2, volume, 0.0, price, self.ORDER_STATE_PLACED,
                   magic, comment, self.ORDER_FILLING_RETURN, self.clock)
        self.orders[o.ticket] = o
        return o.ticket

    def manual_deal(self, symbol: str, side: int, volume: float) -> int:
        """A market deal typed into the terminal by hand (magic 0, no API involved)."""
        o = _Order(next(self._ids), symbol, side, volume, 0.0, 0.0, self.ORDER_STATE_STARTED,
                   0, "", self.ORDER_FILLING_RETURN, self.clock)
        self.orders[o.ticket] = o
        self._deal(o, volume)
        o.state = self.ORDER_STATE_FILLED
        return o.ticket

    def fill_rest(self, ticket: int) -> None:
        """Fill the remainder of a working (partially filled, RETURN) order."""
        o = self.orders[ticket]
        self._deal(o, round(o.volume - o.filled, 8))
        o.state = self.ORDER_STATE_FILLED

    # -- connection ------------------------------------------------------------------------
    def initialize(self, path: str | None = None, **kw: Any) -> bool:
        self.init_calls.append({"path": path, **kw})
        if self.refuse_init > 0:
            self.refuse_init -= 1
            self._err = (-10003, "IPC initialize failed, MetaTrader 5 x64 not found")
            return False
        if "login" in kw and (kw["login"] != self.login_id or kw.get("password") != self._password):
            self._err = (self.RES_E_AUTH_FAILED, "Terminal: Authorization failed")
            return False
        self.alive = self.initialized = True
        self._err = (1, "Success")
        return True

    def shutdown(self) -> bool:
        self.initialized = False
        return True

    def last_error(self) -> tuple[int, str]:
        return self._err

    def _up(self) -> bool:
        if self.alive and self.initialized:
            self._err = (1, "Success")
            return True
        self._err = (self.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
        return False

    # -- market and account ------------------------------------------------------------------
    def account_info(self) -> AccountInfo | None:
        if not self._up():
            return None
        profit = sum(self._float_pnl(p) for p in self.positions.values())
        margin = sum(abs(p[1]) * self.symbols[p[0]].contract_size * p[2] / self.leverage
                     for p in self.positions.values())
        eq = self.balance + profit
        return AccountInfo(self.login_id, 0, self.leverage, self.margin_mode, self.balance, 0.0,
                           profit, eq, margin, eq - margin, "Test", self.server, "USD", "Fake")

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        return self._up() and symbol in self.symbols

    def symbol_info(self, symbol: str) -> SymbolInfo | None:
        if not self._up():
            return None
        s = self.symbols.get(symbol)
        if s is None:
            self._err = (-4, "Terminal: Not found")
            return None
        return SymbolInfo(s.name, True, True, s.digits, 10.0 ** -s.digits, 4, 3,
                          s.expiration_mode, s.stops_level, s.bid, s.ask, s.contract_size,
                          s.vmin, s.vmax, s.vstep, s.base, s.quote, s.base, "")

    def symbol_info_tick(self, symbol: str) -> Tick | None:
        if not self._up() or symbol not in self.symbols:
            return None
        s = self.symbols[symbol]
        t = int(self.clock)
        return Tick(t, s.bid, s.ask, 0.0, 0, t * 1000, 6, 0.0)

    # -- trading ---------------------------------------------------------------------------
    def order_send(self, request: dict[str, Any]) -> OrderSendResult | None:
        if not self._up():
            return None
        outcome, fraction = self._script.popleft() if self._script else ("", 0.5)
        if outcome == "lost_before":
            self.lose_terminal()
            self._up()  # sets last_error to the IPC failure
            return None
        self.sent.append(dict(request))
        res = self._execute(request, outcome, fraction)
        if outcome == "lost_after":
            self.lose_terminal()
            self._up()  # sets last_error to the IPC failure
            return None
        return res

    def _result(self, req: dict[str, Any], code: int, order: int = 0, deal: int = 0,
                volume: float = 0.0, price: float = 0.0, comment: str = "") -> OrderSendResult:
        s = self.symbols.get(req.get("symbol", ""))
        tr = TradeRequest(*(req.get(f, 0) for f in TradeRequest._fields[:14]),
                          req.get("comment", ""), req.get("position", 0), 0)
        return OrderSendResult(code, deal, order, volume, price, s.bid if s else 0.0,
                               s.ask if s else 0.0, comment, 1, 0, tr)

    def _execute(self, req: dict[str, Any], outcome: str, fraction: float) -> OrderSendResult:
        if req.get("action") == self.TRADE_ACTION_REMOVE:
            o = self.orders.get(req.get("order", 0))
            if o is not None and outcome == "triggered":
                self._fire(o)
            if outcome == "frozen":
                return self._result(req, self.TRADE_RETCODE_FROZEN, comment="Frozen")
            if o is None or o.state not in (self.ORDER_STATE_PLACED, self.ORDER_STATE_PARTIAL):
                return self._result(req, self.TRADE_RETCODE_INVALID, comment="Invalid request")
            o.state = self.ORDER_STATE_CANCELED
            return self._result(req, self.TRADE_RETCODE_DONE, order=o.ticket,
                                comment="Request executed")
        s = self.symbols.get(req.get("symbol", ""))
        too_long = len(req.get("comment", "")) > 31
        stops = (self.ORDER_TYPE_BUY_STOP, self.ORDER_TYPE_SELL_STOP)
        pending = req.get("action") == self.TRADE_ACTION_PENDING and req.get("type") in stops
        if not (req.get("action") == self.TRADE_ACTION_DEAL or pending) or s is None or too_long:
            return self._result(req, self.TRADE_RETCODE_INVALID, comment="Invalid request")
        vol, buy = float(req["volume"]), req["type"] in (self.ORDER_TYPE_BUY, stops[0])
        steps = vol / s.vstep
        if vol < s.vmin or vol > s.vmax or abs(steps - round(steps)) > 1e-7:
            return self._result(req, self.TRADE_RETCODE_INVALID_VOLUME, comment="Invalid volume")
        if s.closed:
            return self._result(req, self.TRADE_RETCODE_MARKET_CLOSED, comment="Market closed")
        if pending:
            return self._pending(req, s, vol, buy, outcome)
        px = s.ask if buy else s.bid
        if outcome in ("requote", "price_changed"):
            code = (self.TRADE_RETCODE_REQUOTE if outcome == "requote"
                    else self.TRADE_RETCODE_PRICE_CHANGED)
            move = 50 * 10.0 ** -s.digits  # the market moved 50 points against the order
            s.bid, s.ask = (s.bid + move, s.ask + move) if buy else (s.bid - move, s.ask - move)
            px = s.ask if buy else s.bid
            return self._result(req, code, price=px, comment=outcome.replace("_", " ").title())
        slip = req.get("deviation", 0) * 10.0 ** -s.digits + 1e-12
        if abs(float(req.get("price", px)) - px) > slip:
            return self._result(req, self.TRADE_RETCODE_REQUOTE, price=px, comment="Requote")
        acct = self.account_info()
        assert acct is not None
        if vol * s.contract_size * px / self.leverage > acct.margin_free and not self._reduces(
                s.name, vol if buy else -vol):
            return self._result(req, self.TRADE_RETCODE_NO_MONEY, comment="No money")
        o = _Order(next(self._ids), s.name, req["type"], vol, 0.0, px, self.ORDER_STATE_STARTED,
                   int(req.get("magic", 0)), req.get("comment", ""), req.get("type_filling", 0),
                   self.clock, float(req.get("sl", 0.0)), float(req.get("tp", 0.0)))
        self.orders[o.ticket] = o
        if outcome == "partial":
            part = max(s.vstep, round(round(vol * fraction / s.vstep) * s.vstep, 8))
            deal = self._deal(o, part)
            keep = o.filling == self.ORDER_FILLING_RETURN
            o.state = self.ORDER_STATE_PARTIAL if keep else self.ORDER_STATE_CANCELED
            return self._result(req, self.TRADE_RETCODE_DONE_PARTIAL, o.ticket, deal, part, px,
                                "Request executed partially")
        deal = self._deal(o, vol)
        o.state = self.ORDER_STATE_FILLED
        if outcome == "timeout":
            return self._result(req, self.TRADE_RETCODE_TIMEOUT, comment="Request timeout")
        return self._result(req, self.TRADE_RETCODE_DONE, o.ticket, deal, vol, px,
                            "Request executed")

    def _pending(self, req: dict[str, Any], s: _Symbol, vol: float, buy: bool, outcome: str
                 ) -> OrderSendResult:
        """Place a pending stop order of ``vol`` lots (checked as a trade server does)."""
        px = float(req.get("price", 0.0))
        gap = px - s.ask if buy else s.bid - px  # how far the market must move to trigger it
        if px <= 0 or abs(round(px, s.digits) - px) > 1e-12 or gap <= 0:
            return self._result(req, self.TRADE_RETCODE_INVALID_PRICE, comment="Invalid price")
        if gap < s.stops_level * 10.0 ** -s.digits - 1e-12:
            return self._result(req, self.TRADE_RETCODE_INVALID_STOPS, comment="Invalid stops")
        when = {self.ORDER_TIME_GTC: self.SYMBOL_EXPIRATION_GTC,
                self.ORDER_TIME_DAY: self.SYMBOL_EXPIRATION_DAY}.get(req.get("type_time", 0), 0)
        if not when & s.expiration_mode:
            return self._result(req, self.TRADE_RETCODE_INVALID_EXPIRATION,
                                comment="Invalid expiration")
        o = _Order(next(self._ids), s.name, req["type"], vol, 0.0, px, self.ORDER_STATE_PLACED,
                   int(req.get("magic", 0)), req.get("comment", ""), req.get("type_filling", 0),
                   self.clock)
        self.orders[o.ticket] = o
        if outcome == "timeout":
            return self._result(req, self.TRADE_RETCODE_TIMEOUT, comment="Request timeout")
        return self._result(req, self.TRADE_RETCODE_PLACED, order=o.ticket,
                            comment="Request executed")

    def _reduces(self, symbol: str, signed: float) -> bool:
        net = sum(p[1] for p in self.positions.values() if p[0] == symbol)
        return net * signed < 0 and abs(signed) <= abs(net) + 1e-9

    def _float_pnl(self, p: list) -> float:
        s = self.symbols[p[0]]
        mark = s.bid if p[1] > 0 else s.ask
        return (mark - p[2]) * p[1] * s.contract_size

    def _deal(self, o: _Order, vol: float) -> int:
        """Execute ``vol`` lots of ``o`` at the current price; update positions and balance."""
        s, buy = self.symbols[o.symbol], o.type % 2 == 0
        px, signed = (s.ask if buy else s.bid), (vol if buy else -vol)
        profit, entry, pos_id = 0.0, self.DEAL_ENTRY_IN, 0
        same = [t for t, p in self.positions.items() if p[0] == o.symbol]
        if self.margin_mode == 0 and same:  # netting: one position per symbol
            pos_id = same[0]
            p = self.positions[pos_id]
            if p[1] * signed > 0:
                p[2] = (p[2] * p[1] + px * signed) / (p[1] + signed)
                p[1] = round(p[1] + signed, 8)
            else:
                closed = min(abs(signed), abs(p[1])) * (1 if p[1] > 0 else -1)
                profit = (px - p[2]) * closed * s.contract_size
                rest = round(p[1] + signed, 8)
                flips = abs(signed) > abs(p[1]) + 1e-9
                entry = self.DEAL_ENTRY_INOUT if flips else self.DEAL_ENTRY_OUT
                if abs(rest) < 1e-9:
                    del self.positions[pos_id]
                else:
                    if rest * p[1] < 0:
                        p[2] = px
                    p[1] = rest
        else:
            pos_id = o.ticket
            self.positions[pos_id] = [o.symbol, signed, px, o.magic, o.comment]
        commission = -self.commission_per_lot * vol
        self.balance += profit + commission
        self.clock = max(self.clock + 0.001, time.time())  # real time, strictly increasing
        t = int(self.clock)
        kind = self.DEAL_TYPE_BUY if buy else self.DEAL_TYPE_SELL
        d = TradeDeal(next(self._ids), o.ticket, t, int(self.clock * 1000), kind, entry,
                      o.magic, pos_id, 3, vol, px, commission, 0.0, profit, 0.0, o.symbol,
                      o.comment, "")
        self.deals.append(d)
        o.filled = round(o.filled + vol, 8)
        o.deals.append(d.ticket)
        return d.ticket

    # -- queries -----------------------------------------------------------------------------
    def _view(self, o: _Order) -> TradeOrder:
        t = int(o.time)
        return TradeOrder(o.ticket, t, t * 1000, t, t * 1000, 0, o.type, 0, o.filling, o.state,
                          o.magic, 0, 0, 3, o.volume, round(o.volume - o.filled, 8), o.price,
                          o.sl, o.tp, o.price, 0.0, o.symbol, o.comment, "")

    def _working(self, o: _Order) -> bool:
        return o.state in (self.ORDER_STATE_STARTED, self.ORDER_STATE_PLACED,
                           self.ORDER_STATE_PARTIAL)

    @staticmethod
    def _match(symbol: str, sym: str | None, group: str | None) -> bool:
        return (sym is None or symbol == sym) and (
            group is None or any(fnmatch.fnmatchcase(symbol, g) for g in group.split(",")))

    @staticmethod
    def _secs(x: Any) -> float:
        return x.timestamp() if hasattr(x, "timestamp") else float(x)

    def orders_get(self, symbol: str | None = None, group: str | None = None,
                   ticket: int | None = None) -> tuple[TradeOrder, ...] | None:
        if not self._up():
            return None
        return tuple(self._view(o) for o in self.orders.values() if self._working(o)
                     and self._match(o.symbol, symbol, group) and ticket in (None, o.ticket))

    def history_orders_get(self, date_from: Any = None, date_to: Any = None,
                           group: str | None = None, ticket: int | None = None,
                           position: int | None = None) -> tuple[TradeOrder, ...] | None:
        if not self._up():
            return None
        out: Iterable[_Order] = (o for o in self.orders.values() if not self._working(o))
        if ticket is not None:
            return tuple(self._view(o) for o in out if o.ticket == ticket)
        lo, hi = self._secs(date_from), self._secs(date_to)
        return tuple(self._view(o) for o in out
                     if lo <= o.time <= hi and self._match(o.symbol, None, group))

    def history_deals_get(self, date_from: Any = None, date_to: Any = None,
                          group: str | None = None, ticket: int | None = None,
                          position: int | None = None) -> tuple[TradeDeal, ...] | None:
        if not self._up():
            return None
        if ticket is not None:
            return tuple(d for d in self.deals if d.order == ticket)
        if position is not None:
            return tuple(d for d in self.deals if d.position_id == position)
        lo, hi = self._secs(date_from), self._secs(date_to)
        return tuple(d for d in self.deals
                     if lo <= d.time <= hi and self._match(d.symbol, None, group))

    def positions_get(self, symbol: str | None = None, group: str | None = None,
                      ticket: int | None = None) -> tuple[TradePosition, ...] | None:
        if not self._up():
            return None
        t = int(self.clock)
        out = []
        for tk, p in self.positions.items():
            if not self._match(p[0], symbol, group) or ticket not in (None, tk):
                continue
            s = self.symbols[p[0]]
            side = self.POSITION_TYPE_BUY if p[1] > 0 else self.POSITION_TYPE_SELL
            out.append(TradePosition(tk, t, t * 1000, t, t * 1000, side, p[3], tk, 3, abs(p[1]),
                                     p[2], 0.0, 0.0, s.bid if p[1] > 0 else s.ask, 0.0,
                                     self._float_pnl(p), p[0], p[4], ""))
        return tuple(out)
