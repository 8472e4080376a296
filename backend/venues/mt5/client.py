"""MetaTrader 5 broker client (FX/CFD) over the ``MetaTrader5`` package.

The terminal session (lazy import, lock, threads, reconnect) is
:class:`~backend.venues.mt5.terminal.Mt5Terminal`; this module maps our orders to MT5's.

Orders are market deals (``TRADE_ACTION_DEAL``) and, for the protective stops of
:mod:`backend.venues.live_brackets`, pending stop orders (``TRADE_ACTION_PENDING``,
``ORDER_TYPE_SELL_STOP``/``BUY_STOP``); both carry ``magic`` and our client order id in
``comment`` (ours are at most 30 characters; MT5 keeps 31).  The requests are built by
:mod:`backend.venues.mt5.mapping`, which also maps the result codes:

* ``DONE`` -> FILLED; ``DONE_PARTIAL`` -> PARTIALLY_FILLED (remainder still working,
  ``return`` filling) or CANCELLED with the filled part (``ioc``: remainder cancelled);
  ``PLACED`` -> ACCEPTED; for a stop order ``PLACED``/``DONE`` -> ACCEPTED (resting) and
  ``INVALID_PRICE``/``INVALID_STOPS`` (wrong side of the market, inside the stops level)
  -> :class:`VenueRejected`;
* ``REQUOTE``/``PRICE_CHANGED``/``PRICE_OFF``: a requote is a definitive no-fill (the
  server created no order), so a market order is sent once more with a fresh price --
  but only after looking the client order id up and finding nothing; a second requote
  (or any requote of a stop order) is a rejection;
* ``TIMEOUT``/``CONNECTION``/``ERROR``/``TOO_MANY_REQUESTS`` -> :class:`VenueUnavailable`
  (outcome unknown: the caller looks the id up before anything is resent);
* everything else (``NO_MONEY``, ``INVALID_VOLUME``, ``MARKET_CLOSED``, ...) ->
  :class:`VenueRejected`;
* ``order_send`` returning ``None``: ``last_error()``; a lost terminal (IPC error) ->
  reconnect (``shutdown`` + ``initialize``, ``reconnect_attempts`` times with backoff)
  and :class:`VenueUnavailable`.  Orders are never resent by the client.

Units: quantities in base units (lots x ``trade_contract_size``), prices in quote
currency per base unit, fees in quote currency (the deal's ``commission`` + ``fee``,
converted from the account currency when they differ), times in ns UTC (deal times
arrive in the trade server's clock, shifted by ``server_utc_offset_s``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from backend.messages import OrderStatus, Side
from backend.venues.broker import (
    StopWouldTrigger,
    VenueFill,
    VenueOrder,
    VenueRejected,
    VenueUnavailable,
)
from backend.venues.config import VenueConfigError
from backend.venues.mt5.mapping import (
    Outcome,
    deal_request,
    lots_for,
    our_symbol,
    outcome_of,
    retcode_name,
    status_of_state,
    stop_price_of,
    stop_request,
    terminal_lost,
    to_point,
)
from backend.venues.mt5.terminal import MT5_MISSING, Mt5NotInstalled, Mt5Terminal

__all__ = ["MT5_MISSING", "Mt5Client", "Mt5NotInstalled", "make_client"]

log = logging.getLogger(__name__)


class Mt5Client(Mt5Terminal):
    """:class:`~backend.venues.broker.BrokerClient` for a MetaTrader 5 terminal.

    Parameters
    ----------
    cfg : Mt5Config
        ``settings.venue.mt5``.
    symbols : sequence of str
        Our symbols traded (``BASE/QUOTE``); selected in the terminal on connect.
    module : module, optional
        The ``MetaTrader5`` module or a fake with its API; imported on connect if None.
    """

    name = "mt5"
    #: MT5 neither refuses a reused comment nor bounds how late a request can land: an
    #: order with an unknown outcome is never resent (``backend.venues.placement``).
    unique_client_order_ids = False
    request_lifetime_s: float | None = None
    #: Protective stops rest at the trade server as pending stop orders.
    supports_stop_orders = True

    # -- orders ---------------------------------------------------------------------------
    def _ours(self, o: Any) -> bool:
        return o.magic == self.cfg.magic and str(o.comment).startswith("tm-")

    def _view(self, o: Any, deals: Sequence[Any] | None = None) -> VenueOrder:
        """VenueOrder of MT5 order ``o`` (``TradeOrder``) with its ``deals`` if known."""
        cs = self._spec(o.symbol).trade_contract_size
        if deals:
            lots = sum(d.volume for d in deals)
            avg = sum(d.volume * d.price for d in deals) / lots if lots else None
        else:
            lots = max(0.0, o.volume_initial - o.volume_current)
            avg = o.price_open if lots > 0 else None
        status = status_of_state(self._module(), o.state, lots)
        reason = ""
        if status is OrderStatus.CANCELLED:
            reason = "remainder cancelled" if lots > 0 else "cancelled"
        elif status is OrderStatus.REJECTED:
            reason = "rejected by the trade server"
        ours = self._ours(o)
        return VenueOrder(
            client_order_id=o.comment if ours else f"ext-{o.ticket}",
            venue_order_id=str(o.ticket), symbol=our_symbol(o.symbol, self._to_ours),
            side=Side.BUY if o.type % 2 == 0 else Side.SELL, quantity=o.volume_initial * cs,
            filled=lots * cs, avg_price=avg, status=status, reason=reason, external=not ours,
            stop_price=stop_price_of(self._module(), o))

    def _sync_find(self, client_order_id: str, sym: str) -> VenueOrder | None:
        working = [o for o in self._call("orders_get", symbol=sym, many=True)
                   if self._ours(o) and o.comment == client_order_id]
        if not working:
            frm, to = self._window()
            working = [o for o in self._call("history_orders_get", frm, to, group=sym, many=True)
                       if self._ours(o) and o.comment == client_order_id]
        if not working:
            return None
        if len(working) > 1:
            log.error("MT5 has %d orders with comment %s", len(working), client_order_id)
        o = working[-1]
        return self._view(o, self._call("history_deals_get", ticket=o.ticket, many=True))

    def _lots(self, quantity: float, symbol: str, spec: Any) -> float:
        """``quantity`` base units of ``symbol`` in lots (rounded down to the step), refused
        outside the symbol's volume limits."""
        cs = spec.trade_contract_size
        lots = lots_for(quantity, cs, spec.volume_step)
        if lots < spec.volume_min - 1e-12 or lots > spec.volume_max + 1e-12:
            raise VenueRejected(
                f"quantity {quantity:g} {symbol} = {lots:g} lots ({cs:g} per lot, step "
                f"{spec.volume_step:g}) outside [{spec.volume_min:g}, {spec.volume_max:g}] lots")
        return lots

    def _send(self, req: dict[str, Any], client_order_id: str) -> Any:
        """``order_send(req)``; no answer: a lost terminal is reconnected and the outcome
        is unknown (:class:`VenueUnavailable`), any other error is a refusal."""
        mod = self._module()
        res = mod.order_send(req)
        if res is None:
            err = mod.last_error()
            if terminal_lost(err):
                back = self._reconnect()
                raise VenueUnavailable(
                    f"terminal lost during order_send of {client_order_id} ({err[0]}, "
                    f"{err[1]}){'; reconnected' if back else ''}: outcome unknown")
            raise VenueRejected(f"order_send refused the request: {err}")
        return res

    def _sync_place(self, client_order_id: str, symbol: str, side: Side, quantity: float,
                    sl: float | None, tp: float | None) -> VenueOrder:
        mod, sym = self._module(), self._sym(symbol)
        spec = self._spec(sym)
        cs = spec.trade_contract_size
        lots = self._lots(quantity, symbol, spec)
        buy = side is Side.BUY
        for attempt in (0, 1):
            tick = self._call("symbol_info_tick", sym)
            price = tick.ask if buy else tick.bid
            if price <= 0:
                raise VenueRejected(f"no {'ask' if buy else 'bid'} price for {sym}")
            req = deal_request(mod, self.cfg, sym, lots, buy, price, client_order_id, sl, tp)
            log.info("MT5 order_send %s %s %g lots %s @ %g", client_order_id, side.value, lots,
                     sym, price)
            res = self._send(req, client_order_id)
            outcome, name = outcome_of(mod, res.retcode), retcode_name(mod, res.retcode)
            if outcome is Outcome.REQUOTE and attempt == 0:
                # A requote creates no order; resend only if the id is really unknown.
                found = self._sync_find(client_order_id, sym)
                if found is not None:
                    return found
                log.info("MT5 %s for %s (%s); retrying once with a fresh price", name,
                         client_order_id, res.comment)
                continue
            break
        what = f"{name} ({res.retcode}) {res.comment}".strip()
        if outcome is Outcome.UNKNOWN:
            raise VenueUnavailable(f"{what}: outcome of {client_order_id} unknown")
        if outcome in (Outcome.REJECTED, Outcome.REQUOTE):
            raise VenueRejected(what)
        base = dict(client_order_id=client_order_id, venue_order_id=str(res.order),
                    symbol=symbol, side=side, quantity=lots * cs)
        if outcome is Outcome.PLACED:
            return VenueOrder(**base, filled=0.0, avg_price=None, status=OrderStatus.ACCEPTED)
        filled = min(res.volume, lots)
        if outcome is Outcome.DONE and filled >= lots - 1e-9:
            return VenueOrder(**base, filled=lots * cs, avg_price=res.price,
                              status=OrderStatus.FILLED)
        still = self._call("orders_get", ticket=res.order, many=True)
        return VenueOrder(
            **base, filled=filled * cs, avg_price=res.price,
            status=OrderStatus.PARTIALLY_FILLED if still else OrderStatus.CANCELLED,
            reason="" if still else f"{name}: remainder cancelled ({self.cfg.filling})")

    def _sync_place_stop(self, client_order_id: str, symbol: str, side: Side,
                         quantity: float, stop_price: float) -> VenueOrder:
        mod, sym = self._module(), self._sym(symbol)
        spec = self._spec(sym)
        lots = self._lots(quantity, symbol, spec)
        stop = to_point(stop_price, spec.point, spec.digits)
        if stop <= 0:
            raise VenueRejected(f"stop price {stop_price:g} of {client_order_id} is not > 0")
        tick = self._call("symbol_info_tick", sym)
        crossed = (tick.ask >= stop) if side is Side.BUY else (tick.bid <= stop)
        if crossed:  # the server would refuse it (INVALID_PRICE): the stop is hit already
            raise StopWouldTrigger(
                f"stop {stop:g} of {client_order_id} is past the market (bid {tick.bid:g}, "
                f"ask {tick.ask:g}): it would trigger immediately")
        req = stop_request(mod, self.cfg, sym, lots, side is Side.BUY, stop, client_order_id,
                           int(getattr(spec, "expiration_mode", 0)))
        log.info("MT5 order_send %s %s stop %g lots %s @ %g", client_order_id, side.value,
                 lots, sym, stop)
        res = self._send(req, client_order_id)
        outcome, name = outcome_of(mod, res.retcode), retcode_name(mod, res.retcode)
        what = f"{name} ({res.retcode}) {res.comment}".strip()
        if outcome in (Outcome.PLACED, Outcome.DONE):
            return VenueOrder(
                client_order_id=client_order_id, venue_order_id=str(res.order), symbol=symbol,
                side=side, quantity=lots * spec.trade_contract_size, filled=0.0,
                avg_price=None, status=OrderStatus.ACCEPTED, stop_price=stop)
        if outcome in (Outcome.UNKNOWN, Outcome.PARTIAL):  # PARTIAL: a deal? ask, never guess
            raise VenueUnavailable(f"{what}: outcome of {client_order_id} unknown")
        raise VenueRejected(what)  # INVALID_PRICE/INVALID_STOPS (wrong side, too close), ...

    async def place_market_order(self, client_order_id: str, symbol: str, side: Side,
                                 quantity: float, *, sl: float | None = None,
                                 tp: float | None = None) -> VenueOrder:
        """Market deal of ``quantity`` base units (rounded down to the volume step) with
        ``comment=client_order_id``; optional stop-loss/take-profit prices ``sl``/``tp``."""
        return await self._run(self._sync_place, client_order_id, symbol, side, quantity, sl, tp)

    async def place_stop_order(self, client_order_id: str, symbol: str, side: Side,
                               quantity: float, stop_price: float) -> VenueOrder:
        """Rest a pending stop order (``TRADE_ACTION_PENDING``, ``ORDER_TYPE_SELL_STOP`` /
        ``ORDER_TYPE_BUY_STOP``) of ``quantity`` base units (rounded down to the volume
        step) triggered at ``stop_price`` (quote/base, rounded to the symbol's point) with
        ``comment=client_order_id``.

        ``PLACED``/``DONE`` -> ``ACCEPTED`` (resting, ``stop_price`` set); a stop on the
        wrong side of the market or inside the broker's stops level is refused
        (``INVALID_PRICE``/``INVALID_STOPS``: :class:`VenueRejected`); no answer ->
        :class:`VenueUnavailable`.  Never resent by the client.  Once triggered the order
        is a deal with the order's ticket and comment (:meth:`fetch_fills`).
        """
        return await self._run(self._sync_place_stop, client_order_id, symbol, side,
                               quantity, stop_price)

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """Our order by comment + magic: working (``orders_get``), else from the history of
        the last ``history_days`` (``history_orders_get`` + its deals)."""
        return await self._run(self._sync_find, client_order_id, self._sym(symbol))

    def _sync_open(self, symbols: Sequence[str] | None) -> list[VenueOrder]:
        want = None if symbols is None else {self._sym(s) for s in symbols}
        return [self._view(o) for o in self._call("orders_get", many=True)
                if want is None or o.symbol in want]

    async def fetch_open_orders(self, symbols: Sequence[str] | None = None) -> list[VenueOrder]:
        """Working orders; those without our magic + ``tm-`` comment are ``external``."""
        return await self._run(self._sync_open, symbols)

    def _sync_cancel(self, client_order_id: str, sym: str) -> VenueOrder:
        mod = self._module()
        working = [o for o in self._call("orders_get", symbol=sym, many=True)
                   if self._ours(o) and o.comment == client_order_id]
        if not working:
            final = self._sync_find(client_order_id, sym)
            if final is None:
                raise VenueRejected(f"order {client_order_id} unknown to MetaTrader 5")
            return final
        res = mod.order_send({"action": mod.TRADE_ACTION_REMOVE, "order": working[0].ticket})
        if res is None:
            err = mod.last_error()
            if terminal_lost(err):
                self._reconnect()
                raise VenueUnavailable(f"terminal lost during cancel of {client_order_id}")
            refused = f"cancel refused: {err}"
        elif outcome_of(mod, res.retcode) is not Outcome.DONE:
            refused = f"cancel of {client_order_id}: {retcode_name(mod, res.retcode)}"
        else:
            refused = ""
        found = self._sync_find(client_order_id, sym)
        if refused:
            if found is None:
                raise VenueRejected(refused)
            if not found.final:  # FROZEN, MARKET_CLOSED, ...: it still rests
                raise VenueUnavailable(f"{refused}; the order is still working")
        # refused because it ended first (a stop triggered, the remainder filled): final
        assert found is not None
        return found

    async def cancel_order(self, client_order_id: str, symbol: str) -> VenueOrder:
        """Remove a working order (``TRADE_ACTION_REMOVE``); a final one is returned as is
        (also one that ended while the removal was on its way, e.g. a triggered stop: the
        server refuses the removal and the order's final state is returned).  A removal
        refused while the order still works (``FROZEN``: too close to the market;
        ``MARKET_CLOSED``) raises :class:`VenueUnavailable` (try again later), never
        :class:`VenueRejected`, which means the order is unknown."""
        return await self._run(self._sync_cancel, client_order_id, self._sym(symbol))

    # -- fills, positions, balances -------------------------------------------------------
    def _fee_in_quote(self, amount: float, quote: str) -> float:
        if amount == 0 or quote == self._currency:
            return amount
        for pair, invert in ((self._currency + quote, False), (quote + self._currency, True)):
            tick = self._module().symbol_info_tick(pair)
            if tick is not None and tick.bid > 0:
                return amount / tick.bid if invert else amount * tick.bid
        log.warning("MT5 fee %g %s not converted to %s (no rate): reported as 0", amount,
                    self._currency, quote)
        return 0.0

    def _deal_coid(self, d: Any) -> str:
        if d.magic == self.cfg.magic and str(d.comment).startswith("tm-"):
            return d.comment
        if d.magic == self.cfg.magic:  # the server dropped the comment: ask the order
            for fn in ("history_orders_get", "orders_get"):
                orders = self._call(fn, ticket=d.order, many=True)
                if orders and self._ours(orders[0]):
                    return orders[0].comment
        return f"ext-{d.order}"

    def _sync_fills(self, symbols: Sequence[str], since_ns: int) -> list[VenueFill]:
        mod, off = self._module(), self.cfg.server_utc_offset_s
        want = {self._sym(s) for s in symbols}
        frm, to = self._window(since_ns / 1e9)
        kinds = (mod.DEAL_TYPE_BUY, mod.DEAL_TYPE_SELL)
        out = []
        for d in sorted(self._call("history_deals_get", frm, to, many=True),
                        key=lambda d: (d.time_msc, d.ticket)):
            t_ns = (d.time_msc - off * 1000) * 1_000_000
            if d.type not in kinds or d.symbol not in want or t_ns < since_ns:
                continue
            spec = self._spec(d.symbol)
            out.append(VenueFill(
                fill_id=str(d.ticket), client_order_id=self._deal_coid(d),
                venue_order_id=str(d.order), symbol=our_symbol(d.symbol, self._to_ours),
                side=Side.BUY if d.type == mod.DEAL_TYPE_BUY else Side.SELL,
                quantity=d.volume * spec.trade_contract_size, price=d.price,
                fee=self._fee_in_quote(-(d.commission + d.fee), spec.currency_profit),
                time_ns=int(t_ns)))
        return out

    async def fetch_fills(self, symbols: Sequence[str], since_ns: int) -> list[VenueFill]:
        """Deals (``history_deals_get``) of ``symbols`` at or after ``since_ns``, oldest
        first: deal ticket = fill id, lots -> base units, ``-(commission + fee)`` = fee."""
        return await self._run(self._sync_fills, symbols, since_ns)

    def _sync_positions(self) -> dict[str, float]:
        mod, net = self._module(), dict[str, float]()
        for p in self._call("positions_get", many=True):
            qty = p.volume * self._spec(p.symbol).trade_contract_size
            sym = our_symbol(p.symbol, self._to_ours)
            net[sym] = net.get(sym, 0.0) + (-qty if p.type == mod.POSITION_TYPE_SELL else qty)
        return {s: q for s, q in net.items() if abs(q) > 1e-9}

    async def fetch_positions(self) -> dict[str, float]:
        """Net signed position per symbol in base units (sell positions negative; several
        positions of a hedging account are summed)."""
        return await self._run(self._sync_positions)

    def _sync_balances(self) -> dict[str, float]:
        acct = self._call("account_info")
        self._currency = acct.currency
        return {acct.currency: float(acct.balance)}

    async def fetch_balances(self) -> dict[str, float]:
        """``{account currency: balance}`` (``account_info().balance``: realized cash, without
        the floating P&L of open positions)."""
        return await self._run(self._sync_balances)

    async def fetch_equity(self) -> tuple[str, float]:
        """``(account currency, equity)``: balance + floating P&L (``account_info``)."""
        acct = await self._run(self._call, "account_info")
        return acct.currency, float(acct.equity)


def make_client(settings: Any) -> Mt5Client:
    """Factory hook (:func:`backend.venues.factory.make_client`): the client of
    ``settings.venue.mt5`` for ``settings.symbols``, failing at once -- not at the first
    connect -- when the ``MetaTrader5`` package is missing.

    Raises
    ------
    backend.venues.config.VenueConfigError
        The package cannot be imported here (message: :data:`MT5_MISSING`).
    """
    client = Mt5Client(settings.venue.mt5, list(settings.symbols))
    try:
        client._module()
    except Mt5NotInstalled:
        raise VenueConfigError(MT5_MISSING) from None
    return client

