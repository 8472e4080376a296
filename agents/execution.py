"""execution agent: the only agent that talks to a venue.

Reads ``orders`` (SubmitOrder / CancelAllOrders) and ``market_data``.  The venue is
``settings.venue.kind`` (:func:`backend.venues.factory.make_venue`): the paper venue or
a live one over a broker client.  Money-safety rules it keeps (DESIGN.md,
``docs/venues.md``):

* an order's intent is persisted (status NEW) *before* it goes to the venue;
* **UNKNOWN protocol**: a submit that fails with ``VenueUnavailable`` or takes longer
  than ``venue.submit_timeout_s`` makes the order UNKNOWN (persisted); it is resolved by
  looking it up by client order id (``venue.resolve_attempts`` lookups with doubling
  pauses from ``venue.resolve_backoff_s``): found -> its state is adopted; definitely
  not found -> only then it is sent again, with the same client order id; still
  unreachable -> the order stays UNKNOWN, the input is *not* acknowledged (it is handled
  again after a pause) and the agent shows ``degraded``;
* a redelivered SubmitOrder whose order exists (database row) is looked up at the venue
  first and never sent twice;
* while ``mesh:halt`` is latched every new order is denied;
* **reconciliation**: on start, before it reads anything, the agent reconciles its
  database with the venue (:mod:`agents.execution_reconcile`); while it cannot (venue
  unreachable) it reads nothing -- orders stay pending in the stream -- shows
  ``degraded`` with the reason and retries with backoff.

Live venues report fills by polling: every ``venue.poll_s`` (own Redis transaction:
events and the ledger atomically; fills have ids from the venue's fill ids, so a poll
redone after a crash changes nothing twice) and on every bar.

Venue events (accepted, rejected, cancelled, fills, position changes) and a
:class:`PortfolioMarked` after every bar go to ``trading_events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.asyncio.client import Pipeline

from agents.base import REDIS_ERRORS, Agent, RetryLater
from agents.execution_reconcile import reconcile
from agents.execution_records import record_event
from backend import channels, failpoints
from backend.bus import Delivery
from backend.messages import (
    AgentHeartbeat,
    AgentState,
    AnyMessage,
    BarClosed,
    CancelAllOrders,
    ClosedPosition,
    KillSwitchExecuted,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    PortfolioMarked,
    SubmitOrder,
    now_ns,
    stable_id,
)
from backend.persistence import Store, make_engine
from backend.settings import Settings
from backend.venues.base import Venue, VenueEvent
from backend.venues.broker import BrokerClient, VenueError, VenueOrder, VenueUnavailable
from backend.venues.factory import make_venue

EQUITY_FLUSH_S = 2.0
VENUE_ERRORS = (VenueUnavailable, TimeoutError)


class ExecutionAgent(Agent):
    """Places orders at the venue and reports what happened.

    Parameters
    ----------
    settings
        Mesh settings (``settings.venue`` selects and tunes the venue).
    agent_id
        Default ``"execution"``.
    client
        A broker client to trade through instead of the configured venue (tests).
    """

    role = "execution"

    def __init__(self, settings: Settings, agent_id: str | None = None, *,
                 client: BrokerClient | None = None) -> None:
        super().__init__(settings, agent_id)
        self._client = client
        self._problems: dict[str, str] = {}  # why the venue is not usable, for health
        self._reconciled = False
        self._lock = asyncio.Lock()  # one venue user at a time: inputs, polls, reconcile
        self._retry_s = settings.venue.resolve_backoff_s
        self.venue: Venue | None = None

    def stream_priority(self, stream: str) -> int:
        """Orders before bars within one batch (an order decided on bar N fills on N+1)."""
        return 0 if stream == channels.ORDERS else 1

    def heartbeat(self) -> AgentHeartbeat:
        """The base health record, ``degraded`` with the reason while the venue is not
        usable (unreconciled, an order UNKNOWN, polls failing)."""
        hb = super().heartbeat()
        problem = "; ".join(p for p in self._problems.values() if p)
        if problem and hb.state in (AgentState.RUNNING, AgentState.DEGRADED):
            return hb.model_copy(update={"state": AgentState.DEGRADED,
                                         "last_error": problem[:500]})
        return hb

    # ------------------------------------------------------------------ life cycle
    async def setup(self) -> None:
        """Open the store, build the venue, try to reconcile once."""
        assert self.redis is not None
        self.store = Store(make_engine(self.settings.db_url()))
        self.venue = make_venue(self.settings, self.redis, client=self._client)
        self._marks: list[PortfolioMarked] = []
        self._last_flush = time.monotonic()
        await self._try_reconcile()

    async def main(self) -> None:
        """Reconcile (retrying with backoff), then poll (live venues) and consume."""
        cfg = self.settings.venue
        delay = cfg.resolve_backoff_s
        while not self._reconciled:
            if await self.wait_stop(delay):
                return
            delay = min(delay * 2, cfg.retry_max_s)
            await self._try_reconcile()
        assert self.venue is not None
        poller = asyncio.create_task(self._poll_loop()) if self.venue.polls else None
        try:
            await self.consume_forever()
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(BaseException):
                    await poller

    async def teardown(self) -> None:
        """Flush buffered equity snapshots, close the venue's connections."""
        await self._flush_marks()
        if self.venue is not None:
            await self.venue.close()

    async def _try_reconcile(self) -> bool:
        """One reconciliation attempt; when the venue is unreachable the reason goes to
        health and False is returned.  A definitive venue error (``VenueRejected``, an SDK
        that cannot be imported, a refused login) propagates: the agent faults with it."""
        assert self.venue is not None and self.redis is not None
        venue = self.venue
        self._problems["reconcile"] = f"reconciling with the {venue.name} venue"
        async with self._lock:
            venue.rollback()
            try:
                await venue.load()
                rec = await reconcile(venue, self.store, self._record, self.agent_id, now_ns())
                pipe = self.redis.pipeline(transaction=True)
                for ev in rec.events:
                    self.emit(pipe, channels.TRADING_EVENTS, ev)
                for audit in rec.audits:
                    self.emit(pipe, channels.AUDIT, audit)
                venue.stage(pipe)
                await pipe.execute()
                venue.commit()
            except (*VENUE_ERRORS, *REDIS_ERRORS) as exc:  # retryable; any other VenueError
                venue.rollback()  # (SDK missing, login refused) fails the start loudly
                self._problems["reconcile"] = (
                    f"not trading: unreconciled with the {venue.name} venue "
                    f"({type(exc).__name__}: {exc}); retrying")
                self.log.warning("%s", self._problems["reconcile"])
                return False
        self._problems.pop("reconcile", None)
        self._reconciled = True
        self.log.info("reconciled with the %s venue: %s", venue.name, rec.summary())
        return True

    # ------------------------------------------------------------------ dispatch
    async def dispatch(self, delivery: Delivery) -> None:
        """Handle one input while holding the venue (polls wait meanwhile)."""
        async with self._lock:
            await super().dispatch(delivery)

    async def handle(self, delivery: Delivery, msg: AnyMessage, pipe: Pipeline) -> None:
        """Dispatch orders and bars; an unreachable venue keeps the input for later."""
        assert self.venue is not None
        self.venue.rollback()  # a failed earlier attempt left nothing behind
        try:
            if isinstance(msg, SubmitOrder):
                await self._on_order(msg, pipe)
            elif isinstance(msg, CancelAllOrders):
                await self._on_cancel_all(msg, pipe)
            elif isinstance(msg, BarClosed):
                await self._on_bar(msg, pipe)
        except VENUE_ERRORS as exc:
            self.venue.rollback()
            reason = (f"{self.venue.name} venue unreachable while handling {msg.type} "
                      f"{msg.id}: {type(exc).__name__}: {exc}; input kept, retrying")
            self._problems["venue"] = reason
            delay, self._retry_s = self._retry_s, min(
                self._retry_s * 2, self.settings.venue.retry_max_s)
            raise RetryLater(reason, delay) from exc
        self._problems.pop("venue", None)
        self._retry_s = self.settings.venue.resolve_backoff_s

    def after_commit(self) -> None:
        """Adopt the venue state saved by the committed transaction."""
        assert self.venue is not None
        self.venue.commit()

    # ------------------------------------------------------------------ orders
    async def _on_order(self, order: SubmitOrder, pipe: Pipeline) -> None:
        assert self.redis is not None and self.venue is not None
        coid = order.client_order_id
        fresh = await asyncio.to_thread(self.store.record_order_intent, order)  # intent first
        ev: VenueEvent | None = None
        if not fresh:
            # Seen before (redelivery, or a retry after the venue was unreachable): the
            # venue is asked first; an order it has is adopted, never sent again.
            found = await self._resolve(order)
            if found is not None:
                ev = self.venue.adopt(order, found, now_ns())
        if ev is None:
            if await self.redis.exists(channels.HALT_KEY):
                ev = OrderRejected(
                    id=stable_id("exec", "halted", coid), source=self.agent_id,
                    correlation_id=order.correlation_id, client_order_id=coid,
                    symbol=order.symbol, reason="trading halted (kill switch / circuit breaker)",
                )
            else:
                ev = await self._place(order)
        await self._record(ev)
        self.emit(pipe, channels.TRADING_EVENTS, ev)
        self.venue.stage(pipe)

    async def _place(self, order: SubmitOrder) -> VenueEvent:
        """Send ``order``; on an unknown outcome: UNKNOWN, resolve, resend only if the
        venue definitely does not have it (at most once here)."""
        assert self.venue is not None
        cfg, coid = self.settings.venue, order.client_order_id
        for _ in range(2):
            try:
                ev = await asyncio.wait_for(self.venue.submit(order, now_ns()),
                                            cfg.submit_timeout_s)
            except VENUE_ERRORS as exc:
                why = f"submit outcome unknown: {type(exc).__name__}: {exc}"[:500]
                self.log.warning("order %s UNKNOWN (%s); asking the venue", coid, why)
                await asyncio.to_thread(self.store.update_order_status, coid,
                                        OrderStatus.UNKNOWN, None, why)
                found = await self._resolve(order, settle=True)
                if found is not None:
                    return self.venue.adopt(order, found, now_ns())
                self.log.warning("order %s is not at the venue: sending it again", coid)
                continue
            failpoints.hit(self.agent_id, "after_submit", channels.ORDERS)
            return ev
        raise VenueUnavailable(f"order {coid} still not placed after a resend")

    async def _resolve(self, order: SubmitOrder, settle: bool = False) -> VenueOrder | None:
        """The venue's record of ``order`` (``None``: definitely not there).

        ``resolve_attempts`` lookups with doubling pauses (``settle``: a pause before the
        first one too, so a request still in flight after a timeout can land); raises
        ``VenueUnavailable`` when none succeeds (the order stays as stored, e.g. UNKNOWN).
        """
        assert self.venue is not None
        cfg, coid = self.settings.venue, order.client_order_id
        delay, last = cfg.resolve_backoff_s, ""
        for attempt in range(cfg.resolve_attempts):
            if (attempt or settle) and await self.wait_stop(delay):
                break
            delay *= 2
            try:
                return await asyncio.wait_for(self.venue.fetch_order(coid, order.symbol),
                                              cfg.submit_timeout_s)
            except VENUE_ERRORS as exc:
                last = f"{type(exc).__name__}: {exc}"
        raise VenueUnavailable(f"order {coid} is UNKNOWN: lookup by client order id "
                               f"failed ({last or 'stopping'})")

    async def _on_cancel_all(self, cmd: CancelAllOrders, pipe: Pipeline) -> None:
        """Cancel every open order; for the kill switch also flatten and report.

        Idempotent: handled again after a crash it finds nothing left to cancel or close
        (live venues: the closing orders' ids derive from the command id) and reports
        the (already flat) account again.
        """
        assert self.venue is not None
        now = now_ns()
        for vo in await self.venue.open_venue_orders():  # every order cancelled has a row
            if vo.external and await asyncio.to_thread(self.store.get_order,
                                                       vo.client_order_id) is None:
                await asyncio.to_thread(
                    self.store.record_external_order, vo.client_order_id, vo.symbol,
                    vo.side.value, vo.quantity, vo.status.value, vo.venue_order_id,
                    "external order found by the kill switch", ts=now)
        cancelled = await self.venue.cancel_all(cmd.reason, now)
        events: list[VenueEvent] = list(cancelled)
        closed: list[ClosedPosition] = []
        if cmd.flatten:
            before = await self.venue.positions()
            filled: dict[tuple[str, str], list[OrderFilled]] = {}
            for ev in await self.venue.flatten(now, cmd.id):
                events.append(ev)
                if isinstance(ev, OrderFilled) and ev.symbol in before:
                    filled.setdefault((ev.symbol, ev.client_order_id), []).append(ev)
            for (sym, coid), fills in filled.items():
                qty = sum(f.quantity for f in fills)
                closed.append(ClosedPosition(
                    symbol=sym, quantity=before[sym], client_order_id=coid,
                    price=sum(f.quantity * f.price for f in fills) / qty if qty else 0.0))
        for ev in events:
            await self._record(ev)
            self.emit(pipe, channels.TRADING_EVENTS, ev)
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

    # ------------------------------------------------------------------ bars, polls
    async def _on_bar(self, bar: BarClosed, pipe: Pipeline) -> None:
        assert self.venue is not None
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

    async def _poll_loop(self) -> None:
        """Every ``venue.poll_s``: fetch fills and order updates (live venues)."""
        while not await self.wait_stop(self.settings.venue.poll_s):
            async with self._lock:
                try:
                    await self.poll_once()
                except REDIS_ERRORS as exc:
                    assert self.venue is not None
                    self.venue.rollback()
                    self.log.warning("poll not saved (redis: %s); the next poll redoes it", exc)

    async def poll_once(self) -> int:
        """One poll in its own transaction (no input to acknowledge): persist the events
        (idempotent), then publish them with the staged ledger atomically.  Returns the
        number of events (call with the venue lock held)."""
        assert self.venue is not None and self.redis is not None
        venue = self.venue
        venue.rollback()
        try:
            events = await venue.poll(now_ns())
        except (VenueError, TimeoutError) as exc:
            venue.rollback()
            self._problems["poll"] = f"polling the {venue.name} venue failed: {exc}"
            return 0
        self._problems.pop("poll", None)
        if not events:  # whatever else changed is fetched again by the next poll
            venue.rollback()
            return 0
        for ev in events:
            await self._record(ev)
        pipe = self.redis.pipeline(transaction=True)
        for ev in events:
            self.emit(pipe, channels.TRADING_EVENTS, ev)
        venue.stage(pipe)
        failpoints.hit(self.agent_id, "poll_before_commit")
        await pipe.execute()
        venue.commit()
        return len(events)

    async def _flush_marks(self) -> None:
        marks, self._marks = getattr(self, "_marks", []), []
        self._last_flush = time.monotonic()
        if marks:
            await asyncio.to_thread(self.store.record_equity_many, marks)

    async def _record(self, ev: object) -> None:
        """Persist one venue event (idempotent inserts/updates)."""
        assert self.venue is not None
        await record_event(self.store, self.venue, ev)
