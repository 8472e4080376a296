"""execution agent: the only agent that talks to a venue.

Reads ``orders`` (SubmitOrder / CancelAllOrders) and ``market_data``.  Money-safety
rules it keeps (DESIGN.md):

* an order's intent is persisted (status NEW) *before* it goes to the venue;
* a client order id seen before is never sent blindly again: the venue is asked for it
  by client order id first (idempotent by client order id);
* while ``mesh:halt`` is latched every new order is denied;
* on start it reconciles the database's non-final orders with the venue before it
  accepts new orders.

Venue events (accepted, rejected, fills, position changes) and a
:class:`PortfolioMarked` after every bar go to ``trading_events``.
"""

from __future__ import annotations

import asyncio
import functools
import time

from redis.asyncio.client import Pipeline

from agents.base import Agent
from backend import channels
from backend.bus import Delivery
from backend.messages import (
    NON_FINAL_STATUSES,
    AnyMessage,
    BarClosed,
    CancelAllOrders,
    ClosedPosition,
    KillSwitchExecuted,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    PortfolioMarked,
    PositionChanged,
    SubmitOrder,
    now_ns,
    stable_id,
)
from backend.persistence import Store, make_engine
from backend.venues.paper import PaperVenue

EQUITY_FLUSH_S = 2.0


class ExecutionAgent(Agent):
    """Places orders at the venue and reports what happened."""

    role = "execution"

    def stream_priority(self, stream: str) -> int:
        """Orders before bars within one batch (an order decided on bar N fills on N+1)."""
        return 0 if stream == channels.ORDERS else 1

    async def setup(self) -> None:
        """Open the store, load the venue, reconcile, then accept orders."""
        assert self.redis is not None
        self.store = Store(make_engine(self.settings.db_url()))
        self.venue = PaperVenue(self.redis, self.settings.paper)
        await self.venue.load()
        self._marks: list[PortfolioMarked] = []
        self._last_flush = time.monotonic()
        await self.reconcile()

    async def reconcile(self) -> None:
        """Bring non-final orders in the database in line with the venue."""
        rows = await asyncio.to_thread(self.store.orders)
        fixed = 0
        for row in rows:
            if row["status"] not in NON_FINAL_STATUSES:
                continue
            status = await self.venue.order_status(row["client_order_id"])
            if status is None:
                # Intent persisted but the venue never saw the order (we crashed before
                # the venue call took effect).  Its SubmitOrder is still pending in the
                # stream (not acked) and will be handled again: back to NEW until then.
                if row["status"] != OrderStatus.NEW.value:
                    await asyncio.to_thread(functools.partial(
                        self.store.update_order_status, row["client_order_id"],
                        OrderStatus.NEW, None, "not at venue after restart", force=True,
                    ))
                    fixed += 1
                continue
            if status != row["status"]:
                await asyncio.to_thread(functools.partial(
                    self.store.update_order_status, row["client_order_id"], status,
                    None, "reconciled with venue on start", force=True,
                ))
                fixed += 1
        positions = await self.venue.positions()
        self.log.info(
            "reconciled with %s venue: %d order statuses corrected, open orders %d, positions %s",
            self.venue.name, fixed, len(await self.venue.open_orders()), positions or "flat",
        )

    async def handle(self, delivery: Delivery, msg: AnyMessage, pipe: Pipeline) -> None:
        """Dispatch orders and bars."""
        self.venue.rollback()  # a failed earlier attempt left nothing behind
        if isinstance(msg, SubmitOrder):
            await self._on_order(msg, pipe)
        elif isinstance(msg, CancelAllOrders):
            await self._on_cancel_all(msg, pipe)
        elif isinstance(msg, BarClosed):
            await self._on_bar(msg, pipe)

    def after_commit(self) -> None:
        """Adopt the venue state saved by the committed transaction."""
        self.venue.commit()

    async def _on_order(self, order: SubmitOrder, pipe: Pipeline) -> None:
        assert self.redis is not None
        coid = order.client_order_id
        await asyncio.to_thread(self.store.record_order_intent, order)  # intent first
        halted = await self.redis.exists(channels.HALT_KEY)
        if halted and await self.venue.order_status(coid) is None:
            ev: OrderAccepted | OrderRejected = OrderRejected(
                id=stable_id("exec", "halted", coid), source=self.agent_id,
                correlation_id=order.correlation_id, client_order_id=coid,
                symbol=order.symbol, reason="trading halted (kill switch / circuit breaker)",
            )
            await self._record(ev)
            self.emit(pipe, channels.TRADING_EVENTS, ev)
            return
        # The venue is idempotent by client order id: an order it already has (redelivery
        # after a crash) is answered from its book, never sent twice.
        ev = await self.venue.submit(order, now_ns())
        await self._record(ev)
        self.emit(pipe, channels.TRADING_EVENTS, ev)
        self.venue.stage(pipe)

    async def _on_cancel_all(self, cmd: CancelAllOrders, pipe: Pipeline) -> None:
        """Cancel every open order; for the kill switch also flatten and report.

        Idempotent: handled again after a crash it finds nothing left to cancel or close
        and reports the (already flat) account again.
        """
        now = now_ns()
        cancelled = await self.venue.cancel_all(cmd.reason, now)
        events: list[object] = list(cancelled)
        closed: list[ClosedPosition] = []
        if cmd.flatten:
            before = await self.venue.positions()
            for ev in await self.venue.flatten(now):
                events.append(ev)
                if isinstance(ev, OrderFilled) and ev.symbol in before:
                    closed.append(ClosedPosition(
                        symbol=ev.symbol, quantity=before[ev.symbol], price=ev.price,
                        client_order_id=ev.client_order_id,
                    ))
        for ev in events:
            await self._record(ev)
            self.emit(pipe, channels.TRADING_EVENTS, ev)  # type: ignore[arg-type]
        if cmd.flatten:
            report = KillSwitchExecuted(
                id=stable_id("kill-switch-executed", cmd.id), source=self.agent_id,
                correlation_id=cmd.id, command_id=cmd.id,
                cancelled=[c.client_order_id for c in cancelled], flattened=closed,
                open_orders_left=await self.venue.open_orders(),
                positions_left=await self.venue.positions(),
            )
            self.emit(pipe, channels.TRADING_EVENTS, report)
            mark = self.venue.current_mark()
            if mark is not None:
                pipe.set(channels.PORTFOLIO_KEY, mark.to_json())
            self.log.warning(
                "kill switch: cancelled %d orders, closed %d positions; left: orders %s, "
                "positions %s", len(cancelled), len(closed), report.open_orders_left,
                report.positions_left or "flat",
            )
        self.venue.stage(pipe)

    async def _on_bar(self, bar: BarClosed, pipe: Pipeline) -> None:
        events = await self.venue.on_bar(bar)
        for ev in events:
            await self._record(ev)
            self.emit(pipe, channels.TRADING_EVENTS, ev)
        mark = self.venue.portfolio(bar)
        self.emit(pipe, channels.TRADING_EVENTS, mark)
        pipe.set(channels.PORTFOLIO_KEY, mark.to_json())
        self.venue.stage(pipe)
        self._marks.append(mark)
        if len(self._marks) >= 500 or time.monotonic() - self._last_flush > EQUITY_FLUSH_S:
            await self._flush_marks()

    async def _flush_marks(self) -> None:
        marks, self._marks = self._marks, []
        self._last_flush = time.monotonic()
        if marks:
            await asyncio.to_thread(self.store.record_equity_many, marks)

    async def _record(self, ev: object) -> None:
        """Persist one venue event (idempotent inserts/updates)."""
        s = self.store
        if isinstance(ev, OrderAccepted):
            await asyncio.to_thread(
                s.update_order_status, ev.client_order_id, OrderStatus.ACCEPTED,
                ev.venue_order_id,
            )
        elif isinstance(ev, OrderRejected):
            await asyncio.to_thread(
                s.update_order_status, ev.client_order_id, OrderStatus.REJECTED, None, ev.reason
            )
        elif isinstance(ev, OrderCancelled):
            await asyncio.to_thread(
                s.update_order_status, ev.client_order_id, OrderStatus.CANCELLED, None, ev.reason
            )
        elif isinstance(ev, OrderFilled):
            await asyncio.to_thread(self._record_fill, ev)
        elif isinstance(ev, PositionChanged):
            await asyncio.to_thread(s.upsert_position, ev)

    def _record_fill(self, fill: OrderFilled) -> None:
        s = self.store
        if s.get_order(fill.client_order_id) is None:
            # Venue-originated exit (stop-loss / take-profit / flatten): record it as an
            # order of its own so every fill has an order row.
            s.record_order_intent(SubmitOrder(
                id=stable_id("exit-order", fill.client_order_id), ts=fill.ts,
                source=fill.source, correlation_id=fill.correlation_id,
                client_order_id=fill.client_order_id, symbol=fill.symbol, side=fill.side,
                quantity=fill.quantity, reduce_only=True, signal_id=fill.correlation_id or "-",
                bar_seq=fill.bar_seq,
            ))
        s.record_fill(fill)
        s.update_order_status(fill.client_order_id, OrderStatus.FILLED)

    async def teardown(self) -> None:
        """Flush buffered equity snapshots."""
        await self._flush_marks()
