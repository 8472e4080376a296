"""Interactive Brokers broker client (stocks, FX) over ``ib_async`` / ``ib_insync``.

Connects to TWS or IB Gateway (``host``/``port``/``client_id``), qualifies one contract
per symbol (:func:`backend.venues.ib.mapping.contract_spec`), and places market orders and
-- the protective stops of :mod:`backend.venues.live_brackets` -- good-till-cancelled
stop orders (``STP``, price rounded to the contract's ``minTick``), both tagged
``orderRef=<client order id>``.  Order states come from
``Trade.orderStatus.status`` (:func:`~backend.venues.ib.mapping.status_of`) with the error
text of ``errorEvent`` for rejections; fills from ``execDetailsEvent`` /
``commissionReportEvent`` and ``reqExecutionsAsync`` (execId = fill id, commission =
fee).  ``ib_async`` runs on our event loop, so no threads are involved.

Outcome-unknown rules: a place that gets no acknowledgement (a status past
``PendingSubmit``) within ``timeout_s``, or loses the connection first, raises
:class:`VenueUnavailable`; :meth:`IbClient.fetch_order` then asks TWS (all open +
completed orders, executions) by ``orderRef`` and raises again rather than answer
``None`` while an order TWS has not confirmed is still only known locally.

The connection, the events and the reconnect loop (exponential backoff, contracts
re-qualified and executions re-read on every connect) are
:class:`~backend.venues.ib.session.IbSession`'s.

Units: quantities in shares (stocks: whole shares, rounded down) or base currency
(FX), prices in quote currency per unit, fees in quote currency, times ns UTC.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from backend.messages import OrderStatus, Side
from backend.venues.broker import VenueFill, VenueOrder, VenueRejected, VenueUnavailable
from backend.venues.config import VenueConfigError
from backend.venues.ib.mapping import (
    DEFAULT_TICKS,
    IB_MISSING,
    UNACKED,
    IbNotInstalled,
    import_ib,
    status_of,
    stop_price_of,
    time_ns_of,
    to_tick,
)
from backend.venues.ib.session import OUR_PREFIX, IbSession

__all__ = ["IbClient", "make_client"]

log = logging.getLogger(__name__)


class IbClient(IbSession):
    """:class:`~backend.venues.broker.BrokerClient` for TWS / IB Gateway.

    Parameters
    ----------
    cfg : IbkrConfig
        ``settings.venue.ibkr``.
    symbols : sequence of str
        Our symbols traded (``AAPL/USD``, ``EUR/USD``); contracts qualified on connect.
    ib : IB, optional
        An ``ib_async.IB`` (or a fake with its API); created on connect if None.
    sleep : callable, optional
        ``asyncio.sleep`` (the tests record the reconnect backoff through it).
    """

    name = "ibkr"
    #: TWS neither refuses a reused ``orderRef`` nor bounds how late a request can land:
    #: an order with an unknown outcome is never resent (``backend.venues.placement``).
    unique_client_order_ids = False
    request_lifetime_s: float | None = None
    #: Protective stops rest at TWS as GTC ``STP`` orders.
    supports_stop_orders = True

    # -- orders ---------------------------------------------------------------------------
    def _symbol_of(self, contract: Any) -> str:
        sym = self._by_conid.get(getattr(contract, "conId", 0))
        return sym or f"{contract.symbol}/{contract.currency}"

    def _error_of(self, order: Any) -> str:
        if order.orderRef and order.orderRef in self._errors:
            return self._errors[order.orderRef]
        if order.clientId == self.cfg.client_id:
            return self._errors.get(f"#{order.orderId}", "")
        return ""

    def _execs_of(self, order: Any) -> list[Any]:
        """Known executions of ``order`` (by permId, else by our orderRef)."""
        return [f for f in self._fills.values()
                if (order.permId and f.execution.permId == order.permId)
                or (str(order.orderRef).startswith(OUR_PREFIX)
                    and f.execution.orderRef == order.orderRef)]

    def _view(self, trade: Any) -> VenueOrder:
        o, st = trade.order, trade.orderStatus
        fills = trade.fills or self._execs_of(o)
        filled = st.filled or sum(f.execution.shares for f in fills)
        if not filled and 0 < (o.filledQuantity or 0) < 1e300:  # completed orders
            filled = float(o.filledQuantity)
        avg = st.avgFillPrice or (sum(f.execution.shares * f.execution.price for f in fills)
                                  / filled if fills and filled else 0.0)
        status, reason = status_of(st.status, filled, self._error_of(o),
                                   o.orderRef in self._cancel_requested)
        if status is OrderStatus.FILLED and not filled:
            filled = float(o.totalQuantity)
        ours = str(o.orderRef).startswith(OUR_PREFIX)
        return VenueOrder(
            client_order_id=o.orderRef if ours else f"ext-{o.permId or o.orderId}",
            venue_order_id=str(o.permId or o.orderId), symbol=self._symbol_of(trade.contract),
            side=Side.BUY if o.action == "BUY" else Side.SELL, quantity=float(o.totalQuantity),
            filled=float(filled), avg_price=avg or None, status=status, reason=reason,
            external=not ours, stop_price=stop_price_of(o))

    async def _until(self, trade: Any, done: Callable[[], bool], what: str) -> None:
        """Wait until ``done()`` after an order event, or raise VenueUnavailable on timeout
        or on a lost connection."""
        ib = self._ib
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def check(*_: Any) -> None:
            if fut.done():
                return
            if done():
                fut.set_result(None)
            elif not ib.isConnected():
                fut.set_exception(VenueUnavailable(f"connection lost before {what}: "
                                                   "outcome unknown"))

        handlers = [(ib.orderStatusEvent, check), (ib.errorEvent, check),
                    (ib.disconnectedEvent, check)]
        for ev, h in handlers:
            ev += h
        try:
            check()
            await asyncio.wait_for(fut, self.cfg.timeout_s)
        except TimeoutError:
            raise VenueUnavailable(f"no {what} within {self.cfg.timeout_s:g}s: "
                                   "outcome unknown") from None
        finally:
            for ev, h in handlers:
                ev -= h

    def _sendable(self, symbol: str, quantity: float) -> tuple[Any, Any, int]:
        """``(ib, contract, whole units)`` of an order of ``quantity`` ``symbol``, refused
        (:class:`VenueRejected`) before sending when the symbol is not configured or the
        quantity rounds down to 0."""
        ib = self._require()
        contract = self._contracts.get(symbol)
        if contract is None:
            raise VenueRejected(f"{symbol} is not a configured IB symbol")
        qty = math.floor(quantity + 1e-9)
        if qty <= 0:
            unit = "shares" if contract.secType == "STK" else contract.symbol
            raise VenueRejected(f"{quantity:g} {unit} of {symbol} rounds down to 0 "
                                "(whole units only)")
        return ib, contract, qty

    async def _submit(self, ib: Any, contract: Any, order: Any, client_order_id: str
                      ) -> VenueOrder:
        """``placeOrder`` and wait for TWS's acknowledgement; a rejection raises
        :class:`VenueRejected`, no acknowledgement :class:`VenueUnavailable`."""
        try:
            trade = ib.placeOrder(contract, order)
        except (ConnectionError, OSError) as exc:  # the socket broke under the call
            raise VenueUnavailable(f"IB placeOrder of {client_order_id}: {exc}; outcome "
                                   "unknown") from None
        await self._until(
            trade, lambda: trade.orderStatus.status not in UNACKED
            or bool(self._error_of(trade.order)),
            f"acknowledgement of {client_order_id}")
        view = self._view(trade)
        if view.status is OrderStatus.REJECTED:
            raise VenueRejected(view.reason or f"IB rejected {client_order_id}")
        return view

    async def place_market_order(self, client_order_id: str, symbol: str, side: Side,
                                 quantity: float) -> VenueOrder:
        """``MarketOrder`` with ``orderRef=client_order_id``; waits for TWS's acknowledgement
        (a rejection -- ``Inactive``, or cancelled with an error -- raises
        :class:`VenueRejected` with IB's error text).

        Quantities are rounded down to whole units (shares; FX base currency units); a
        zero quantity is rejected before anything is sent.
        """
        ib, contract, qty = self._sendable(symbol, quantity)
        mod = self._mod or import_ib()
        order = mod.MarketOrder(side.value, qty, orderRef=client_order_id,
                                account=self.cfg.account)
        log.info("IB placeOrder %s %s %d %s", client_order_id, side.value, qty, symbol)
        return await self._submit(ib, contract, order, client_order_id)

    async def place_stop_order(self, client_order_id: str, symbol: str, side: Side,
                               quantity: float, stop_price: float) -> VenueOrder:
        """``StopOrder`` (``STP``, ``tif="GTC"``) of ``quantity`` (whole units, rounded
        down) triggered at ``stop_price`` (quote/unit, rounded to the contract's
        ``minTick``) with ``orderRef=client_order_id``; waits for TWS's acknowledgement
        like :meth:`place_market_order`.

        A working stop is ``PreSubmitted`` (held by IB until triggered) or ``Submitted``:
        ``ACCEPTED`` with ``stop_price`` set.  Once triggered it executes as a market
        order; its executions carry the same ``orderRef`` (:meth:`fetch_fills`).
        """
        ib, contract, qty = self._sendable(symbol, quantity)
        tick = self._ticks.get(symbol) or DEFAULT_TICKS.get(contract.secType, 0.0)
        stop = to_tick(stop_price, tick)
        if stop <= 0:
            raise VenueRejected(f"stop price {stop_price:g} of {client_order_id} is not > 0")
        mod = self._mod or import_ib()
        order = mod.StopOrder(side.value, qty, stop, orderRef=client_order_id,
                              account=self.cfg.account, tif="GTC")
        log.info("IB placeOrder %s %s %d %s stop %g", client_order_id, side.value, qty,
                 symbol, stop)
        return await self._submit(ib, contract, order, client_order_id)

    def _find(self, client_order_id: str) -> Any | None:
        hits = [t for t in self._ib.trades() if t.order.orderRef == client_order_id]
        hits.sort(key=lambda t: t.orderStatus.status not in UNACKED)
        return hits[-1] if hits else None

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """Our order by ``orderRef``: this session's trades, else TWS's open and completed
        orders, else executions; ``None`` only when TWS confirms none of them."""
        ib = self._require()
        trade = self._find(client_order_id)
        if trade is None or trade.orderStatus.status in UNACKED:
            await self._ask("reqAllOpenOrders", ib.reqAllOpenOrdersAsync())
            await self._ask("reqCompletedOrders", ib.reqCompletedOrdersAsync(False))
            trade = self._find(client_order_id)
        if trade is not None and trade.orderStatus.status in UNACKED:
            raise VenueUnavailable(f"{client_order_id} sent but not confirmed by TWS yet")
        if trade is None or not (trade.fills or self._execs_of(trade.order)):
            for fill in await self._ask("reqExecutions", ib.reqExecutionsAsync()):
                self._keep_fill(fill)
        if trade is not None:
            return self._view(trade)
        fills = [f for f in self._fills.values() if f.execution.orderRef == client_order_id]
        if not fills:
            return None
        qty = sum(f.execution.shares for f in fills)
        e = fills[-1].execution
        return VenueOrder(
            client_order_id=client_order_id, venue_order_id=str(e.permId or e.orderId),
            symbol=self._symbol_of(fills[-1].contract),
            side=Side.BUY if e.side == "BOT" else Side.SELL, quantity=qty, filled=qty,
            avg_price=sum(f.execution.shares * f.execution.price for f in fills) / qty,
            status=OrderStatus.FILLED, reason="from executions")

    async def fetch_open_orders(self, symbols: Sequence[str] | None = None) -> list[VenueOrder]:
        """All working orders at TWS (``reqAllOpenOrdersAsync``: every client and manual
        ones); those without our ``tm-`` orderRef are ``external``."""
        ib = self._require()
        trades = await self._ask("reqAllOpenOrders", ib.reqAllOpenOrdersAsync())
        views = [self._view(t) for t in trades if not t.isDone()]
        return [v for v in views if symbols is None or v.symbol in symbols]

    async def cancel_order(self, client_order_id: str, symbol: str) -> VenueOrder:
        """``cancelOrder`` and wait for the final state; a final order is returned as is."""
        ib = self._require()
        trade = next((t for t in ib.openTrades() if t.order.orderRef == client_order_id), None)
        if trade is None:
            final = await self.fetch_order(client_order_id, symbol)
            if final is None:
                raise VenueRejected(f"order {client_order_id} unknown to IB")
            return final
        self._cancel_requested.add(client_order_id)
        try:
            ib.cancelOrder(trade.order)
        except (ConnectionError, OSError) as exc:
            raise VenueUnavailable(f"IB cancelOrder of {client_order_id}: {exc}") from None
        await self._until(trade, trade.isDone, f"cancel confirmation of {client_order_id}")
        return self._view(trade)

    # -- fills, positions, balances -------------------------------------------------------
    def _fee(self, report: Any, quote: str) -> float:
        if report.currency in ("", quote):
            return float(report.commission)
        log.warning("IB commission %g %s on %s not in %s: reported as 0", report.commission,
                    report.currency, report.execId, quote)
        return 0.0

    async def fetch_fills(self, symbols: Sequence[str], since_ns: int) -> list[VenueFill]:
        """Executions of ``symbols`` at or after ``since_ns``, oldest first.

        An execution whose commission report has not arrived yet is held back (so its
        fee is not lost to the dedupe by fill id) for up to ``timeout_s``, then
        reported with fee 0 and a warning.
        """
        ib = self._require()
        for fill in [*await self._ask("reqExecutions", ib.reqExecutionsAsync()), *ib.fills()]:
            self._keep_fill(fill)
        now, out = time.monotonic(), []
        for exec_id, fill in self._fills.items():
            e, sym = fill.execution, self._symbol_of(fill.contract)
            t_ns = time_ns_of(e.time)
            if sym not in symbols or t_ns < since_ns:
                continue
            report = self._reports.get(exec_id)
            if report is None:
                if now - self._fee_wait.setdefault(exec_id, now) < self.cfg.timeout_s:
                    continue
                log.warning("IB execution %s has no commission report: fee 0", exec_id)
            ours = str(e.orderRef).startswith(OUR_PREFIX)
            out.append(VenueFill(
                fill_id=exec_id, client_order_id=e.orderRef if ours else
                f"ext-{e.permId or e.orderId}", venue_order_id=str(e.permId or e.orderId),
                symbol=sym, side=Side.BUY if e.side == "BOT" else Side.SELL,
                quantity=float(e.shares), price=float(e.price),
                fee=self._fee(report, fill.contract.currency) if report is not None else 0.0,
                time_ns=t_ns))
        out.sort(key=lambda f: (f.time_ns, f.fill_id))
        return out

    async def fetch_positions(self) -> dict[str, float]:
        """Signed position per symbol (``positions()``, kept live by TWS's subscription):
        shares for stocks, base currency for FX."""
        ib = self._require()
        net: dict[str, float] = {}
        for p in ib.positions(self.cfg.account):
            sym = self._symbol_of(p.contract)
            net[sym] = net.get(sym, 0.0) + float(p.position)
        return {s: q for s, q in net.items() if q}

    async def _summary(self) -> list[Any]:
        ib = self._require()
        return list(await self._ask("accountSummary", ib.accountSummaryAsync(self.cfg.account)))

    async def fetch_balances(self) -> dict[str, float]:
        """Cash per currency: ``TotalCashValue`` of the account summary (``BASE`` left out)."""
        return {v.currency: float(v.value) for v in await self._summary()
                if v.tag == "TotalCashValue" and v.currency not in ("", "BASE")}

    async def fetch_equity(self) -> tuple[str, float]:
        """``(base currency, NetLiquidation)`` of the account."""
        for v in await self._summary():
            if v.tag == "NetLiquidation" and v.currency not in ("", "BASE"):
                return v.currency, float(v.value)
        raise VenueUnavailable("IB account summary has no NetLiquidation")


def make_client(settings: Any) -> IbClient:
    """Factory hook (:func:`backend.venues.factory.make_client`): the client of
    ``settings.venue.ibkr`` for ``settings.symbols``, failing at once when neither
    ``ib_async`` nor ``ib_insync`` is installed.

    Raises
    ------
    backend.venues.config.VenueConfigError
        No IB API package (message: :data:`~backend.venues.ib.mapping.IB_MISSING`).
    """
    try:
        import_ib()
    except IbNotInstalled:
        raise VenueConfigError(IB_MISSING) from None
    return IbClient(settings.venue.ibkr, list(settings.symbols))

