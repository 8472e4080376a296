"""execution agent: the only agent that talks to a venue.

Reads ``orders`` (SubmitOrder / CancelAllOrders) and ``market_data``.  The venue is
``settings.venue.kind`` (:func:`backend.venues.factory.make_venue`): the paper venue or
a live one over a broker client.  Money-safety rules it keeps (DESIGN.md,
``docs/venues.md``):

* an order's intent is persisted (status NEW) *before* it goes to the venue, and so is
  every send (``sent_ts``), on a database opened durable (SQLite ``synchronous=FULL``);
* client order ids are unique for the life of the database: an intent whose id exists
  with another signal or bar is refused loudly (``client_order_id_collision``), the
  existing order untouched;
* **UNKNOWN is resolved, never guessed** (:mod:`backend.venues.placement`): an order
  whose send timed out, or that was sent before (a redelivery, a restart), is looked up
  by client order id and in the trade history for longer than the venue's request
  lifetime; found -> adopted; absent at a venue that bounds the lifetime -> sent again;
  absent at any other venue -> left ``UNKNOWN``, its symbol halted, an alert raised
  (:mod:`agents.execution_alarms`), never resent;
* while ``mesh:halt`` is latched every new order is denied; while a symbol is halted
  every new order for it that is not reduce-only is denied;
* **one live process** (:mod:`backend.mesh.lease`): the lease is checked before every venue
  call;
* **reconciliation**: on start, before it reads anything, the agent reconciles its
  database with the venue (:mod:`agents.execution_reconcile`); while it cannot (venue
  unreachable) it reads nothing -- orders stay pending in the stream -- shows
  ``degraded`` with the reason and retries with backoff.

Live venues report fills by polling (:mod:`agents.execution_watch`): every
``venue.poll_s`` (own Redis transaction: events and the ledger atomically; fills have
ids from the venue's fill ids, so a poll redone after a crash changes nothing twice) and
on every bar; UNKNOWN orders are looked up again every ``venue.unknown_recheck_s`` and
the venue's positions compared with the books every ``venue.position_check_s``.

Venue events (accepted, rejected, cancelled, fills, position changes) and a
:class:`PortfolioMarked` after every bar go to ``trading_events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.asyncio.client import Pipeline

from agents.base import REDIS_ERRORS, Agent, RetryLater
from agents.execution_alarms import raise_alarms
from agents.execution_reconcile import reconcile
from agents.execution_records import StoreJournal, load_venue, record_event
from agents.execution_resolve import resolve_symbol
from agents.execution_watch import Watch
from backend import channels
from backend.bus import Delivery
from backend.mesh.halt import read_halt
from backend.mesh.symbol_halt import read_symbol_halts, symbol_halt
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
    ResolveSymbol,
    SubmitOrder,
    now_ns,
    stable_id,
)
from backend.persistence import Store, make_engine
from backend.runtime import failpoints
from backend.settings import Settings
from backend.venues.base import Venue, VenueAlarm, VenueEvent
from backend.venues.broker import BrokerClient, OrderUnresolved, VenueUnavailable
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
    may_latch = True

    def __init__(self, settings: Settings, agent_id: str | None = None, *,
                 client: BrokerClient | None = None) -> None:
        super().__init__(settings, agent_id)
        self._client = client
        self.problems: dict[str, str] = {}  # why the venue is not usable, for health
        self._reconciled = False
        self.lock = asyncio.Lock()  # one venue user at a time: inputs, polls, reconcile
        self._retry_s = settings.venue.resolve_backoff_s
        self.venue: Venue | None = None

    def stream_priority(self, stream: str) -> int:
        """Orders before bars within one batch (an order decided on bar N fills on N+1)."""
        return 0 if stream == channels.ORDERS else 1

    def heartbeat(self) -> AgentHeartbeat:
        """The base health record, ``degraded`` with the reason while the venue is not
        usable (unreconciled, an order UNKNOWN, polls failing)."""
        hb = super().heartbeat()
        problem = "; ".join(p for p in self.problems.values() if p)
        if problem and hb.state in (AgentState.RUNNING, AgentState.DEGRADED):
            return hb.model_copy(update={"state": AgentState.DEGRADED,
                                         "last_error": problem[:500]})
        return hb

    async def _fence(self) -> None:
        if self.lease is not None:
            await self.lease.check()

    # ------------------------------------------------------------------ life cycle
    async def setup(self) -> None:
        """Open the store (durable), build the venue, try to reconcile once."""
        assert self.redis is not None
        self.store = Store(make_engine(self.settings.db_url(), durable=True))
        self.venue = make_venue(self.settings, self.redis, client=self._client,
                                journal=StoreJournal(self.store, self.agent_id),
                                pause=self.wait_stop, fence=self._fence)
        self.watch = Watch(self)
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
        poller = asyncio.create_task(self.watch.run()) if self.venue.polls else None
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
        self.problems["reconcile"] = f"reconciling with the {venue.name} venue"
        async with self.lock:
            venue.rollback()
            try:
                await load_venue(venue, self.store)
                rec = await reconcile(venue, self.store, self.record, self.agent_id, now_ns())
                pipe = self.redis.pipeline(transaction=True)
                for ev in rec.events:
                    self.emit(pipe, channels.TRADING_EVENTS, ev)
                for audit in rec.audits:
                    self.emit(pipe, channels.AUDIT, audit)
                await self.alarms(pipe, rec.alarms)
                venue.stage(pipe)
                failpoints.crash_if_armed(self.agent_id, "reconcile_before_commit")
                await pipe.execute()
                venue.commit()
            except (*VENUE_ERRORS, *REDIS_ERRORS) as exc:  # retryable; any other VenueError
                venue.rollback()  # (SDK missing, login refused) fails the start loudly
                self.problems["reconcile"] = (
                    f"not trading: unreconciled with the {venue.name} venue "
                    f"({type(exc).__name__}: {exc}); retrying")
                self.log.warning("%s", self.problems["reconcile"])
                return False
        self.problems.pop("reconcile", None)
        self._reconciled = True
        self.log.info("reconciled with the %s venue: %s", venue.name, rec.summary())
        return True

    async def alarms(self, pipe: Pipeline, extra: list[VenueAlarm] | None = None) -> None:
        """Stage the venue's alarms (and ``extra``): symbol halts, alerts, audits."""
        assert self.venue is not None and self.redis is not None
        found = [*(extra or []), *self.venue.take_alarms()]
        if not found:
            return
        halted = await read_symbol_halts(self.redis)
        fresh = [a for a in found if not (  # a symbol halted for this already: said once
            a.halts and a.symbol in halted and halted[a.symbol].kind == a.kind
            and halted[a.symbol].client_order_id == a.client_order_id)]
        if fresh:
            await raise_alarms(fresh, self.store, self.agent_id, pipe, self.emit)

    # ------------------------------------------------------------------ dispatch
    async def dispatch(self, delivery: Delivery) -> None:
        """Handle one input while holding the venue (polls wait meanwhile)."""
        async with self.lock:
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
            elif isinstance(msg, ResolveSymbol):
                await resolve_symbol(self, msg, pipe)
                self.venue.stage(pipe)
            elif isinstance(msg, BarClosed):
                await self._on_bar(msg, pipe)
        except VENUE_ERRORS as exc:
            self.venue.rollback()
            reason = (f"{self.venue.name} venue unreachable while handling {msg.type} "
                      f"{msg.id}: {type(exc).__name__}: {exc}; input kept, retrying")
            self.problems["venue"] = reason
            delay, self._retry_s = self._retry_s, min(
                self._retry_s * 2, self.settings.venue.retry_max_s)
            raise RetryLater(reason, delay) from exc
        self.problems.pop("venue", None)
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
        alarms: list[VenueAlarm] = []
        events: list[VenueEvent] = []
        if not fresh:
            row = await asyncio.to_thread(self.store.get_order, coid)
            if row is not None and _collides(row, order):
                await self._collision(order, row, pipe)
                return
            if row is not None and row["status"] == OrderStatus.REJECTED.value:
                events = [self._rejected(order, row["reason"] or "rejected")]
        if not events:
            refusal = await self._refusal(order)
            if refusal is None and order.expires_at is not None and now_ns() > order.expires_at \
                    and await self.venue_has_no_send(order):
                refusal = (f"expired: decided {(now_ns() - order.ts) / 1e9:.0f}s ago, not sent "
                           f"within risk.order_ttl_s; its price is old")
            try:
                events = await self.venue.place(order, now_ns(), send=refusal is None)
            except OrderUnresolved as exc:  # stays UNKNOWN (journaled): halt, tell a person
                alarms.append(VenueAlarm(order.symbol, "order_unknown", str(exc), coid))
            else:
                if not events:
                    events = [self._rejected(order, refusal or "not sent")]
                failpoints.hit(self.agent_id, "after_submit", channels.ORDERS)
        for ev in events:
            await self.record(ev)
            self.emit(pipe, channels.TRADING_EVENTS, ev)
        await self.alarms(pipe, alarms)
        self.venue.stage(pipe)

    async def venue_has_no_send(self, order: SubmitOrder) -> bool:
        """True when ``order`` was never sent (so refusing it cannot orphan one at the
        venue)."""
        row = await asyncio.to_thread(self.store.get_order, order.client_order_id)
        return row is None or (row["sent_ts"] is None and row["status"] == "NEW")

    def _rejected(self, order: SubmitOrder, reason: str) -> OrderRejected:
        return OrderRejected(
            id=stable_id("exec", "halted", order.client_order_id), source=self.agent_id,
            correlation_id=order.correlation_id, client_order_id=order.client_order_id,
            symbol=order.symbol, reason=reason[:500])

    async def _refusal(self, order: SubmitOrder) -> str | None:
        """Why nothing new may be sent for ``order`` now (``None``: it may)."""
        assert self.redis is not None
        if order.reduce_only:  # an exit always passes: it only ever reduces risk
            return None
        if await read_halt(self.redis) is not None:
            return "trading halted (kill switch / circuit breaker)"
        halt = await symbol_halt(self.redis, order.symbol)
        if halt is not None:
            return f"symbol {order.symbol} halted ({halt.kind}): {halt.reason}"
        return None

    async def _collision(self, order: SubmitOrder, row: dict, pipe: Pipeline) -> None:
        """``order`` reuses the client order id of another order: refuse it loudly and
        leave the existing one alone (its row, its venue order)."""
        coid = order.client_order_id
        why = (f"client order id {coid} already belongs to signal {row['signal_id']} at bar "
               f"{row['bar_seq']} (this order: signal {order.signal_id}, bar {order.bar_seq}): "
               "refused, nothing sent; the ids should be unique for the life of the database")
        self.log.critical("%s", why)
        self.emit(pipe, channels.TRADING_EVENTS, OrderRejected(
            id=stable_id("exec", "collision", order.id), source=self.agent_id,
            correlation_id=order.correlation_id, client_order_id=coid, symbol=order.symbol,
            reason=why[:500]))
        await raise_alarms([VenueAlarm(order.symbol, "id_collision", why, coid)], self.store,
                           self.agent_id, pipe, self.emit)

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
        cancelled = await self.venue.cancel_all(cmd.reason, now, entries_only=cmd.entries_only)
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
            await self.record(ev)
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
        await self.alarms(pipe)
        self.venue.stage(pipe)

    # ------------------------------------------------------------------ bars, polls
    async def _on_bar(self, bar: BarClosed, pipe: Pipeline) -> None:
        assert self.venue is not None
        events = await self.venue.on_bar(bar)
        for ev in events:
            await self.record(ev)
            self.emit(pipe, channels.TRADING_EVENTS, ev)
        await self.alarms(pipe)
        mark = self.venue.portfolio(bar)
        self.emit(pipe, channels.TRADING_EVENTS, mark)
        pipe.set(channels.PORTFOLIO_KEY, mark.to_json())
        self.venue.stage(pipe)
        self._marks.append(mark)
        if len(self._marks) >= 500 or time.monotonic() - self._last_flush > EQUITY_FLUSH_S:
            await self._flush_marks()

    async def poll_once(self) -> int:
        """One poll of the venue in its own transaction (see
        :meth:`agents.execution_watch.Watch.poll_once`; call with the venue lock held)."""
        return await self.watch.poll_once()

    async def _flush_marks(self) -> None:
        marks, self._marks = getattr(self, "_marks", []), []
        self._last_flush = time.monotonic()
        if marks:
            await asyncio.to_thread(self.store.record_equity_many, marks)

    async def record(self, ev: object) -> None:
        """Persist one venue event (idempotent inserts/updates)."""
        assert self.venue is not None
        await record_event(self.store, self.venue, ev)


def _collides(row: dict, order: SubmitOrder) -> bool:
    """True when the stored order with ``order``'s client order id was born from
    another signal or bar (a client order id reused: never resolve it to the old one)."""
    if row.get("external"):
        return True
    return (row["signal_id"] != order.signal_id
            or int(row["bar_seq"] or 0) != int(order.bar_seq))
