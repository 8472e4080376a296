"""A fake IB API: :class:`FakeTws` (the TWS/Gateway side) and :class:`FakeIB` (an
``ib_async.IB`` look-alike the client talks to).

``FakeIB`` has the ``IB`` methods the client uses (``connectAsync``, ``placeOrder``,
``cancelOrder``, ``trades``, ``openTrades``, ``fills``, ``reqExecutionsAsync``,
``reqAllOpenOrdersAsync``, ``reqCompletedOrdersAsync``, ``positions``,
``accountSummaryAsync``, ``qualifyContractsAsync``, ``reqContractDetailsAsync``, ...) and
``eventkit`` events.  It is
built from ``ib_async``'s own dataclasses (``Trade``, ``Order``, ``OrderStatus``,
``Fill``, ``Execution``, ``CommissionReport``, ``Position``, ``AccountValue``), and it
applies TWS's messages the way ``ib_async``'s wrapper does: ``placeOrder`` returns a
``PendingSubmit`` trade at once, and TWS's answers (status, execution details,
commission report, errors) arrive later on the event loop (``loop.call_soon``).

``FakeTws`` keeps what survives a client session: orders (by permId), executions,
positions and cash.  The next placements follow :meth:`FakeTws.script`:

``fill`` (default)  acknowledged (Submitted), executed, Filled;
``partial``         acknowledged, ``fraction`` executed, remainder working;
``hold``            acknowledged, not executed (fill it later with :meth:`FakeTws.fill`);
``reject``          error 201 (``ib_async`` marks the trade Cancelled), then Inactive;
``drop``            executed at TWS, then the connection drops before any answer;
``lose``            the connection drops before TWS sees the order;
``mute``            executed at TWS, but no answer reaches the client (in-flight
                    timeout); the order shows up in open/completed orders and executions;
``vanish``          the message is lost on the way: TWS never sees the order.

A stop order (``StopOrder``: ``STP``, trigger in ``auxPrice``) rests instead of filling:
acknowledged ``PreSubmitted`` (held by IB until triggered, as IB simulates stops on
SMART), it triggers when :meth:`FakeTws.move_price` moves the contract's price to or
through the stop (a sell at or below it, a buy at or above it; one placed through the
price triggers at once): ``Submitted``, executed at the new price with an execution and
a commission report like a market fill, ``Filled``.  ``reject``, ``drop`` (rested, then
the connection drops), ``lose``, ``mute`` and ``vanish`` apply to it too.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from eventkit import Event
from ib_async import (
    AccountValue,
    CommissionReport,
    Contract,
    ContractDetails,
    Execution,
    Fill,
    Order,
    OrderStatus,
    Position,
    Trade,
)
from ib_async.objects import TradeLogEntry

from tests.fakes.ib_tws import DONE, KNOWN, FakeTws, SrvOrder, now_utc

__all__ = ["KNOWN", "FakeIB", "FakeTws", "SrvOrder"]

class FakeIB:
    """The client side: what ``ib_async.IB`` exposes, fed by :class:`FakeTws`."""

    def __init__(self, tws: FakeTws) -> None:
        self.tws = tws
        for name in ("connectedEvent", "disconnectedEvent", "newOrderEvent", "orderStatusEvent",
                     "execDetailsEvent", "commissionReportEvent", "errorEvent",
                     "cancelOrderEvent", "openOrderEvent", "positionEvent"):
            setattr(self, name, Event(name))
        self.client_id = -1
        self._connected = False
        self.stalled = False  # requests get no answer (TWS hung)
        self.place_calls: list[Order] = []
        self._reset()

    def _reset(self) -> None:
        self._trades: dict[Any, Trade] = {}
        self._perm2trade: dict[int, Trade] = {}
        self._fills: dict[str, Fill] = {}

    def _lost(self) -> None:
        self._connected = False
        self._reset()
        self.disconnectedEvent.emit()

    @staticmethod
    def _key(client_id: int, order_id: int, perm_id: int) -> Any:
        return perm_id if order_id <= 0 else (client_id, order_id)

    # -- connection -----------------------------------------------------------------------
    async def connectAsync(self, host: str = "127.0.0.1", port: int = 7497, clientId: int = 1,
                           timeout: float | None = 4, readonly: bool = False, account: str = "",
                           raiseSyncErrors: bool = False, fetchFields: Any = None) -> FakeIB:
        self.tws.accept(self, clientId)
        self.client_id, self._connected = clientId, True
        for o in self.tws.orders.values():  # startup sync: open, then completed orders
            if o.client_id == clientId and o.status not in DONE:
                self._adopt(o)
        await self.reqCompletedOrdersAsync(False)
        await self.reqExecutionsAsync()
        self.connectedEvent.emit()
        return self

    def disconnect(self) -> str | None:
        if not self._connected:
            return None
        self.tws.sessions.pop(self.client_id, None)
        self._lost()
        return "disconnected"

    def isConnected(self) -> bool:
        return self._connected

    async def qualifyContractsAsync(self, *contracts: Contract) -> list[Contract | None]:
        out: list[Contract | None] = []
        for c in contracts:
            con_id = KNOWN.get((c.secType, c.symbol, c.currency))
            if con_id is not None:
                c.conId = con_id
                c.localSymbol = f"{c.symbol}.{c.currency}" if c.secType == "CASH" else c.symbol
            out.append(c if con_id is not None else None)
        return out

    async def reqContractDetailsAsync(self, contract: Contract) -> list[ContractDetails]:
        await self._check()
        tick = self.tws.ticks.get(contract.conId)
        return [] if tick is None else [ContractDetails(contract=contract, minTick=tick)]

    # -- orders ---------------------------------------------------------------------------
    def placeOrder(self, contract: Contract, order: Order) -> Trade:
        if not self._connected:
            raise ConnectionError("Not connected")
        order.clientId = self.client_id
        order.orderId = order.orderId or self.tws.next_id(self.client_id)
        status = OrderStatus(orderId=order.orderId, status="PendingSubmit")
        trade = Trade(contract, order, status, [], [TradeLogEntry(now_utc(), "PendingSubmit")])
        self._trades[(self.client_id, order.orderId)] = trade
        self.place_calls.append(order)
        self.newOrderEvent.emit(trade)
        asyncio.get_running_loop().call_soon(self.tws.receive_place, self,
                                             copy.copy(contract), copy.copy(order))
        return trade

    def cancelOrder(self, order: Order, manualCancelOrderTime: str = "") -> Trade | None:
        trade = self._trades.get(self._key(order.clientId, order.orderId, order.permId))
        if trade is not None and not trade.isDone():
            trade.orderStatus.status = "PendingCancel"
            self.cancelOrderEvent.emit(trade)
            self.orderStatusEvent.emit(trade)
        asyncio.get_running_loop().call_soon(self.tws.receive_cancel, order.clientId,
                                             order.orderId, order.permId)
        return trade

    def trades(self) -> list[Trade]:
        return list(self._trades.values())

    def openTrades(self) -> list[Trade]:
        return [t for t in self._trades.values() if t.orderStatus.status not in DONE]

    def fills(self) -> list[Fill]:
        return list(self._fills.values())

    def executions(self) -> list[Execution]:
        return [f.execution for f in self._fills.values()]

    def _adopt(self, o: SrvOrder, completed: bool = False) -> Trade:
        """``openOrder`` + ``orderStatus`` / ``completedOrder`` as ``ib_async`` applies them:
        a completed order becomes a new Trade (keyed by permId) unless its permId is known
        -- so an order placed here but never acknowledged keeps its PendingSubmit trade."""
        if completed and o.perm_id in self._perm2trade:
            return self._perm2trade[o.perm_id]
        key = o.perm_id if completed else self._key(o.client_id, o.order_id, o.perm_id)
        trade = self._trades.get(key)
        if trade is None:
            order = copy.copy(o.order)
            order.clientId, order.orderId, order.permId = o.client_id, o.order_id, o.perm_id
            if completed:
                order.filledQuantity = o.filled
            trade = Trade(copy.copy(o.contract), order,
                          OrderStatus(orderId=o.order_id, status=o.status), [], [])
            self._trades[key] = trade
        trade.order.permId = o.perm_id
        if not completed:
            st = trade.orderStatus
            st.status, st.filled, st.avgFillPrice = o.status, o.filled, o.avg
            st.remaining = o.order.totalQuantity - o.filled
        self._perm2trade.setdefault(o.perm_id, trade)
        return trade

    async def reqAllOpenOrdersAsync(self) -> list[Trade]:
        await self._check()
        return [self._adopt(o) for o in self.tws.orders.values() if o.status not in DONE]

    async def reqOpenOrdersAsync(self) -> list[Trade]:
        await self._check()
        return [self._adopt(o) for o in self.tws.orders.values()
                if o.status not in DONE and o.client_id == self.client_id]

    async def reqCompletedOrdersAsync(self, apiOnly: bool) -> list[Trade]:
        await self._check()
        return [self._adopt(o, completed=True) for o in self.tws.orders.values()
                if o.status in DONE and not (apiOnly and o.client_id == 0)]

    async def reqExecutionsAsync(self, execFilter: Any = None) -> list[Fill]:
        await self._check()
        out = []
        for f in self.tws.fills:
            mine = self._fills.get(f.execution.execId)
            if mine is None:
                held = self.tws.delay_commissions and any(
                    r.execId == f.execution.execId for r in self.tws._pending_reports)
                report = CommissionReport() if held else copy.copy(f.commissionReport)
                mine = Fill(f.contract, copy.copy(f.execution), report, f.time)
                self._fills[f.execution.execId] = mine
                trade = self._perm2trade.get(f.execution.permId)
                if trade is not None:
                    trade.fills.append(mine)
            out.append(mine)
        return out

    def positions(self, account: str = "") -> list[Position]:
        return [Position(self.tws.account, c, q, avg)
                for c, q, avg in self.tws.positions.values() if q]

    async def accountSummaryAsync(self, account: str = "") -> list[AccountValue]:
        await self._check()
        tws = self.tws
        nlv = sum(tws.cash.values()) + sum(q * tws.prices[c.conId]
                                           for c, q, _ in tws.positions.values())
        vals = [AccountValue(tws.account, "TotalCashValue", f"{v:.2f}", ccy, "")
                for ccy, v in tws.cash.items()]
        vals.append(AccountValue(tws.account, "TotalCashValue", f"{sum(tws.cash.values()):.2f}",
                                 "BASE", ""))
        vals.append(AccountValue(tws.account, "NetLiquidation", f"{nlv:.2f}", "USD", ""))
        return vals

    async def _check(self) -> None:
        """Before answering a request: a stalled TWS never answers; a closed socket fails."""
        if self.stalled:
            await asyncio.Event().wait()
        if not self._connected:
            raise ConnectionError("Not connected")

    # -- TWS messages (as ib_async's wrapper applies them) --------------------------------
    def _m_status(self, client_id: int, order_id: int, perm_id: int, status: str,
                  filled: float, remaining: float, avg: float) -> None:
        trade = self._trades.get(self._key(client_id, order_id, perm_id))
        if trade is None:
            return
        st = trade.orderStatus
        st.status, st.filled, st.remaining, st.avgFillPrice = status, filled, remaining, avg
        st.permId = trade.order.permId = perm_id
        self._perm2trade.setdefault(perm_id, trade)
        trade.log.append(TradeLogEntry(now_utc(), status))
        self.orderStatusEvent.emit(trade)
        trade.statusEvent.emit(trade)

    def _m_exec(self, contract: Contract, e: Execution) -> None:
        trade = self._perm2trade.get(e.permId) or self._trades.get((e.clientId, e.orderId))
        if e.execId in self._fills:
            return
        fill = Fill(contract, e, CommissionReport(), now_utc())
        self._fills[e.execId] = fill
        if trade is not None:
            trade.fills.append(fill)
            self.execDetailsEvent.emit(trade, fill)
            trade.fillEvent.emit(trade, fill)

    def _m_commission(self, report: CommissionReport) -> None:
        fill = self._fills.get(report.execId)
        if fill is None:
            return
        fill.commissionReport.execId = report.execId
        fill.commissionReport.commission = report.commission
        fill.commissionReport.currency = report.currency
        trade = self._perm2trade.get(fill.execution.permId)
        if trade is not None:
            self.commissionReportEvent.emit(trade, fill, fill.commissionReport)
            trade.commissionReportEvent.emit(trade, fill, fill.commissionReport)

    def _m_error(self, req_id: int, code: int, text: str) -> None:
        trade = self._trades.get((self.client_id, req_id))
        if trade is not None and not trade.isDone():
            trade.orderStatus.status = "Cancelled"
            trade.log.append(TradeLogEntry(now_utc(), "Cancelled", f"Error {code}: {text}", code))
            self.orderStatusEvent.emit(trade)
            trade.statusEvent.emit(trade)
        self.errorEvent.emit(req_id, code, text, None)
