"""The TWS / IB Gateway side of the fake IB API (see :mod:`tests.fakes.ib`).

:class:`FakeTws` keeps what survives a client session -- orders by permId, executions
with their commission reports, positions, cash -- and answers a client's placements
following :meth:`FakeTws.script` (outcomes listed in :mod:`tests.fakes.ib`), rests stop
orders until :meth:`FakeTws.move_price` moves a price through them.  Messages
to a client are delivered on the event loop (``loop.call_soon``), in order, like bytes
arriving on TWS's socket.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ib_async import CommissionReport, Contract, Execution, Fill, Order, OrderStatus

if TYPE_CHECKING:
    from tests.fakes.ib import FakeIB

DONE = OrderStatus.DoneStates
KNOWN = {("STK", "AAPL", "USD"): 265598, ("STK", "MSFT", "USD"): 272093,
         ("CASH", "EUR", "USD"): 12087792, ("CASH", "GBP", "USD"): 12087797}


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass
class SrvOrder:
    """An order as TWS holds it."""

    perm_id: int
    client_id: int
    order_id: int
    contract: Contract
    order: Order
    status: str
    filled: float = 0.0
    avg: float = 0.0
    muted: bool = False
    execs: list[str] = field(default_factory=list)


class FakeTws:
    """The TWS / IB Gateway side: one account, shared by every client session."""

    def __init__(self, account: str = "DU1234567", cash: float = 100_000.0) -> None:
        self.account = account
        self.cash: dict[str, float] = {"USD": cash}
        self.prices = {265598: 190.0, 272093: 410.0, 12087792: 1.1, 12087797: 1.25}
        self.ticks = {265598: 0.01, 272093: 0.01, 12087792: 0.00005, 12087797: 0.00005}
        self.orders: dict[int, SrvOrder] = {}
        self.fills: list[Fill] = []
        self.positions: dict[int, list[Any]] = {}  # conId -> [contract, qty, avg cost]
        self.sessions: dict[int, FakeIB] = {}
        self.refuse = 0  # refuse the next N connection attempts
        self.connects = 0
        self.delay_commissions = False  # hold commission reports until send_commissions()
        self._pending_reports: list[CommissionReport] = []
        self._script: deque[tuple[str, float]] = deque()
        self._perm = itertools.count(900_001)
        self._exec = itertools.count(1)
        self._next_id: dict[int, int] = {}

    # -- test controls --------------------------------------------------------------------
    def script(self, *outcomes: str, fraction: float = 0.5) -> None:
        """Outcomes of the next placements (see the module doc)."""
        self._script.extend((o, fraction) for o in outcomes)

    def by_ref(self, order_ref: str) -> list[SrvOrder]:
        return [o for o in self.orders.values() if o.order.orderRef == order_ref]

    def fill(self, order_ref: str, qty: float | None = None) -> None:
        """Execute (the rest of) the working order ``order_ref``."""
        (o,) = [o for o in self.by_ref(order_ref) if o.status not in DONE]
        self._execute(o, o.order.totalQuantity - o.filled if qty is None else qty)

    def move_price(self, con_id: int, price: float) -> None:
        """The market of ``con_id`` moves to ``price``: working stops it reaches trigger
        (executed at ``price``)."""
        self.prices[con_id] = price
        for o in list(self.orders.values()):
            if o.contract.conId == con_id and self._through(o):
                self._trigger(o)

    def _through(self, o: SrvOrder) -> bool:
        """True for a working stop order the price has reached."""
        if o.order.orderType != "STP" or o.status in DONE:
            return False
        price, stop = self.prices[o.contract.conId], o.order.auxPrice
        return price <= stop if o.order.action == "SELL" else price >= stop

    def _trigger(self, o: SrvOrder) -> None:
        self._status(o, "Submitted")  # sent on as a market order
        self._execute(o, o.order.totalQuantity - o.filled)

    def add_manual_order(self, con_id: int, action: str, qty: float, price: float) -> int:
        """A limit order typed into TWS by hand (client 0, no orderRef)."""
        contract = self._contract(con_id)
        order = Order(action=action, totalQuantity=qty, orderType="LMT", lmtPrice=price,
                      permId=next(self._perm), account=self.account)
        self.orders[order.permId] = SrvOrder(order.permId, 0, 0, contract, order, "Submitted")
        return order.permId

    def manual_fill(self, con_id: int, action: str, qty: float) -> int:
        """A market order typed into TWS by hand and filled at once."""
        perm = self.add_manual_order(con_id, action, qty, 0.0)
        self.orders[perm].order.orderType = "MKT"
        self._execute(self.orders[perm], qty)
        return perm

    def drop(self, client: FakeIB) -> None:
        """The socket to ``client`` breaks."""
        self.sessions.pop(client.client_id, None)
        client._lost()

    def send_commissions(self) -> None:
        reports, self._pending_reports = self._pending_reports, []
        for r in reports:
            self._tell_all("_m_commission", r)

    # -- plumbing -------------------------------------------------------------------------
    def _contract(self, con_id: int) -> Contract:
        (key,) = [k for k, v in KNOWN.items() if v == con_id]
        return Contract(secType=key[0], symbol=key[1], currency=key[2], conId=con_id,
                        exchange="IDEALPRO" if key[0] == "CASH" else "SMART")

    def _tell(self, o: SrvOrder, method: str, *args: Any) -> None:
        client = self.sessions.get(o.client_id)
        if client is not None and not o.muted:
            asyncio.get_running_loop().call_soon(getattr(client, method), *args)

    def _tell_all(self, method: str, *args: Any) -> None:
        for client in self.sessions.values():
            asyncio.get_running_loop().call_soon(getattr(client, method), *args)

    def accept(self, client: FakeIB, client_id: int) -> int:
        self.connects += 1
        if self.refuse > 0:
            self.refuse -= 1
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 7497)")
        if client_id in self.sessions:
            raise ConnectionError(f"client id {client_id} already in use (error 326)")
        self.sessions[client_id] = client
        return self._next_id.setdefault(client_id, 1)

    def next_id(self, client_id: int) -> int:
        self._next_id[client_id] = self._next_id.get(client_id, 1) + 1
        return self._next_id[client_id] - 1

    def _status(self, o: SrvOrder, status: str) -> None:
        o.status = status
        self._tell(o, "_m_status", o.client_id, o.order_id, o.perm_id, status, o.filled,
                   o.order.totalQuantity - o.filled, o.avg)

    def receive_place(self, client: FakeIB, contract: Contract, order: Order) -> None:
        if self.sessions.get(client.client_id) is not client:
            return  # the socket broke before the message left
        outcome, fraction = self._script.popleft() if self._script else ("fill", 1.0)
        if outcome == "vanish":
            return
        if outcome == "lose":
            self.drop(client)
            return
        o = SrvOrder(next(self._perm), client.client_id, order.orderId, contract, order,
                     "PreSubmitted", muted=outcome in ("drop", "mute"))
        order.permId = o.perm_id
        order.account = order.account or self.account
        self.orders[o.perm_id] = o
        if outcome == "reject":
            o.status = "Inactive"
            self._tell(o, "_m_error", order.orderId, 201, "Order rejected - reason:The "
                       "account does not have trading permissions for this product")
            self._status(o, "Inactive")
            return
        if order.orderType == "STP":  # rests, held by IB until triggered
            self._status(o, "PreSubmitted")
            if self._through(o):
                self._trigger(o)
            if outcome == "drop":
                self.drop(client)
            return
        self._status(o, "Submitted")
        if outcome == "hold":
            return
        qty = order.totalQuantity if outcome != "partial" else int(order.totalQuantity * fraction)
        self._execute(o, qty)
        if outcome == "drop":
            self.drop(client)

    def receive_cancel(self, client_id: int, order_id: int, perm_id: int) -> None:
        o = self.orders.get(perm_id) or next(
            (x for x in self.orders.values() if (x.client_id, x.order_id) == (client_id, order_id)),
            None)
        if o is not None and o.status not in DONE:
            self._status(o, "Cancelled")

    def _execute(self, o: SrvOrder, qty: float) -> None:
        c, buy = o.contract, o.order.action == "BUY"
        price = self.prices[c.conId]
        e = Execution(execId=f"0000e0d5.{next(self._exec):08x}.01.01", time=now_utc(),
                      acctNumber=self.account, exchange=c.exchange, side="BOT" if buy else "SLD",
                      shares=qty, price=price, permId=o.perm_id, clientId=o.client_id,
                      orderId=o.order_id, cumQty=o.filled + qty, avgPrice=price,
                      orderRef=o.order.orderRef)
        fee = max(1.0, 0.005 * qty) if c.secType == "STK" else 2.0
        report = CommissionReport(execId=e.execId, commission=fee, currency=c.currency)
        self.fills.append(Fill(c, e, report, e.time))
        o.avg = (o.avg * o.filled + price * qty) / (o.filled + qty)
        o.filled += qty
        o.execs.append(e.execId)
        pos = self.positions.setdefault(c.conId, [c, 0.0, 0.0])
        signed = qty if buy else -qty
        if pos[1] * signed >= 0:
            pos[2] = (pos[2] * abs(pos[1]) + price * qty) / (abs(pos[1]) + qty)
        pos[1] += signed
        self.cash[c.currency] = self.cash.get(c.currency, 0.0) - signed * price - fee
        self._tell(o, "_m_exec", c, copy.copy(e))
        if self.delay_commissions:
            self._pending_reports.append(copy.copy(report))
        else:
            self._tell(o, "_m_commission", copy.copy(report))
        self._status(o, "Filled" if o.filled >= o.order.totalQuantity else "Submitted")
