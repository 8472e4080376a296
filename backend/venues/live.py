"""``LiveVenue``: the :class:`~backend.venues.base.Venue` over any
:class:`~backend.venues.broker.BrokerClient` (ccxt, MT5, IBKR, test fakes).

The client speaks the venue's API; this class adds everything venue-independent:

* **orders sent at most once** (:mod:`backend.venues.placement`: journaled before the
  call; an unknown outcome resolved by asking the venue, never by a guess);
* a **ledger** (:mod:`backend.venues.ledger`) of positions, average prices, realized
  P&L, fees and cash built from the venue's fills, each applied once (fees taken in the
  base asset netted out);
* **fills by polling** (:mod:`backend.venues.live_fills`: every ``venue.poll_s`` while
  orders are working, and on every bar) with order updates (cancellations, expiries,
  rejections);
* **brackets** (:mod:`backend.venues.live_brackets`): a protective stop resting at the
  venue where it supports them, exits retried until flat, the kill switch's closes;
* **marks** from the venue's balances (cash in ``quote_currency``) and the ledger;
* **position checks** (:mod:`backend.venues.live_checks`): a difference with the venue
  is an alarm that halts the symbol, never a silent overwrite.

The ledger lives in Redis (:mod:`backend.venues.live_state`), changes staged in the
agent's transaction like the paper book (:meth:`stage` / :meth:`commit` / :meth:`rollback`).

Units: quantities base units, prices quote/base, cash and fees in the account (quote)
currency, times ns UTC.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Literal

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from backend.messages import (
    BarClosed,
    OrderCancelled,
    OrderFilled,
    OrderStatus,
    PortfolioMarked,
    SubmitOrder,
    now_ns,
)
from backend.venues import ledger as lg
from backend.venues import live_orders as le
from backend.venues.base import BookPosition, PositionFix, VenueAlarm, VenueEvent
from backend.venues.broker import BrokerClient, VenueOrder, VenueRejected
from backend.venues.ledger import Accounting, Ledger
from backend.venues.live_brackets import Brackets
from backend.venues.live_checks import mesh_positions, position_alarms
from backend.venues.live_fills import FILL_OVERLAP_NS, FillPoller
from backend.venues.live_state import LedgerState, ledger_keys
from backend.venues.placement import MemoryJournal, OrderIntent, Placer, PlacerTiming, SendJournal

__all__ = ["FILL_OVERLAP_NS", "FlattenScope", "LiveVenue", "ledger_keys"]

log = logging.getLogger("venue.live")

FlattenScope = Literal["mesh", "account"]


class LiveVenue:
    """A real venue behind a :class:`BrokerClient`, with a local ledger in Redis.

    Parameters
    ----------
    client
        The broker/exchange client (not yet connected: :meth:`load` connects).
    redis
        The execution agent's Redis client (ledger storage).
    symbols
        The mesh's symbols: fills are fetched for them (and any symbol held or ordered).
    quote_currency
        The account currency whose balance is the ledger's cash.
    accounting
        ``"spot"`` or ``"margin"`` (see :mod:`backend.venues.ledger`).
    journal, timing, pause, fence
        The :class:`Placer`'s (the send journal -- default in memory --, the timeouts and
        UNKNOWN windows, a stop-aware pause, the lease check before every venue call).
    flatten_scope
        ``"mesh"``: the kill switch closes what the mesh holds; ``"account"``: every
        position the venue reports.
    """

    polls = True

    def __init__(self, client: BrokerClient, redis: Redis, *, symbols: Sequence[str],
                 quote_currency: str, accounting: Accounting = "spot",
                 journal: SendJournal | None = None, timing: PlacerTiming | None = None,
                 pause: Callable[[float], Awaitable[bool]] | None = None,
                 fence: Callable[[], Awaitable[None]] | None = None,
                 flatten_scope: FlattenScope = "mesh") -> None:
        self.client, self.redis, self.name = client, redis, client.name
        self.symbols, self.quote = list(symbols), quote_currency
        self.state = LedgerState(redis, self.name, accounting)
        self.placer = Placer(client, journal or MemoryJournal(), timing, pause, fence)
        self.poller = FillPoller(self.name, client, self.placer, self.state, self.symbols,
                                 self.fetch_order)
        self.brackets = Brackets(self.name, client, self.placer, self._held,
                                 lambda w: self._poll(w, None, now_ns(), protect=False),
                                 self.step)
        self.flatten_scope = flatten_scope
        self._alarms: list[VenueAlarm] = []
        self._synced_bar_time = -1  # bar time of the last on-bar poll + balance refresh
        self._synced_committed = -1

    # ------------------------------------------------------------------ state
    @property
    def ledger(self) -> Ledger:
        """The committed ledger."""
        return self.state.ledger

    @property
    def _cur(self) -> Ledger:
        return self.state.cur

    def _w(self) -> Ledger:
        return self.state.w()

    async def load(self, baseline: dict[str, float] | None = None) -> None:
        """Connect the client, load the ledger from Redis, refresh the balances.

        A new ledger starts its fill cursor now and its ``baseline`` (what the venue
        held before the mesh traded) at ``baseline`` when given (the durable copy the
        execution agent keeps in its database), else at the venue's positions now.
        Raises ``VenueUnavailable``.
        """
        await self.client.connect()
        led = await self.state.read()
        if led is None:
            held = baseline if baseline is not None else await self.client.fetch_positions()
            led = Ledger(accounting=self.ledger.accounting, fill_cursor_ns=now_ns(),
                         baseline={s: float(q) for s, q in held.items() if q})
        self._refresh_cash(led, await self.client.fetch_balances())
        self.state.reset(led)
        self._alarms = []

    async def close(self) -> None:
        """Close the client (never raises)."""
        await self.client.close()

    def stage(self, pipe: Pipeline) -> None:
        """Stage the pending ledger in the agent's transaction."""
        self.state.stage(pipe)

    def commit(self) -> None:
        """Adopt the pending ledger after the transaction executed."""
        self.state.commit()
        self._synced_committed = self._synced_bar_time

    def rollback(self) -> None:
        """Forget the pending ledger (transaction not executed) and its alarms."""
        self.state.rollback()
        self._alarms = []
        self._synced_bar_time = self._synced_committed

    @property
    def baseline(self) -> dict[str, float]:
        """What the venue held per symbol before the mesh traded (base units)."""
        return dict(self._cur.baseline)

    def known_orders(self) -> set[str]:
        """Client order ids the ledger tracks."""
        return set(self._cur.orders)

    def take_alarms(self) -> list[VenueAlarm]:
        """The alarms raised since the last call (see :class:`VenueAlarm`)."""
        out, self._alarms = self._alarms, []
        return out

    def _refresh_cash(self, led: Ledger, balances: dict[str, float]) -> None:
        led.balances = dict(balances)
        if self.quote in balances:
            led.cash = float(balances[self.quote])

    def step(self, symbol: str) -> float:
        """The venue's quantity step of ``symbol`` (0 when the client does not say): a
        position below it is dust, neither exited nor protected nor a mismatch."""
        fn = getattr(self.client, "quantity_step", None)
        return float(fn(symbol) or 0.0) if fn is not None else 0.0

    async def _held(self, symbol: str) -> float:
        """The mesh's part of the venue's position in ``symbol`` (venue - baseline)."""
        venue = await self.placer.call("fetch_positions", self.client.fetch_positions)
        return float(venue.get(symbol, 0.0)) - self._cur.baseline.get(symbol, 0.0)

    # ------------------------------------------------------------------ orders
    async def place(self, order: SubmitOrder, now_ns: int, *, send: bool = True
                    ) -> list[VenueEvent]:
        """See :meth:`backend.venues.base.Venue.place`.

        A reduce-only order is cut to the smaller of the ledger's opposite position and
        what the venue holds of it (a fee taken in the base asset, holdings sold by
        hand), after the position's protective stop is cancelled (on a spot account it
        holds the coins); it is rejected when there is nothing to reduce.
        """
        w = self._w()
        coid, qty = order.client_order_id, order.quantity
        events: list[VenueEvent] = []
        if order.reduce_only and send and await self.placer.journal.last_sent(coid) is None:
            events, traded = await self.brackets.unprotect(w, order.symbol, now_ns)
            if traded:
                events += await self._poll(w, None, now_ns, protect=False)
            pos = w.position_qty(order.symbol)
            held = await self._held(order.symbol)
            if not pos * order.side.sign < 0 or not held * order.side.sign < 0:
                reason = (f"reduce_only {order.side.value} but the position is {pos:.8g} "
                          f"(venue holds {held:.8g})")
                return [*events, le.rejected(self.name, coid, order.symbol, reason,
                                             order.correlation_id, now_ns)]
            qty = min(qty, abs(pos), abs(held))
        intent = OrderIntent(coid, order.symbol, order.side, qty, order.reduce_only,
                             order.correlation_id, order.bar_seq)
        if not send:
            sent = await self.placer.journal.last_sent(coid)
            found = None if sent is None else await self.placer.resolve(intent, sent)
            return [] if found is None else [self.adopt(order, found, now_ns)]
        try:
            found = await self.placer.place(intent)
        except VenueRejected as exc:
            return [*events, le.rejected(self.name, coid, order.symbol, str(exc),
                                         order.correlation_id, now_ns)]
        return [*events, self.adopt(order, found, now_ns, requested=qty)]

    def adopt(self, order: SubmitOrder, found: VenueOrder, now_ns: int,
              requested: float = 0.0) -> VenueEvent:
        """Take over ``found`` (the venue's record of ``order``) without sending anything:
        the ledger tracks it (its fills come by :meth:`poll`) and the event reports it."""
        o = le.track(self._w(), found, reduce_only=order.reduce_only,
                     correlation_id=order.correlation_id, bar_seq=order.bar_seq,
                     stop_loss=order.stop_loss, take_profit=order.take_profit,
                     requested=requested or order.quantity)
        return le.status_event(self.name, o, found.reason, now_ns)

    async def lookup(self, order: SubmitOrder, sent_ns: int | None) -> VenueOrder | None:
        """The venue's record of ``order`` as the UNKNOWN protocol settles it: ``None``
        without asking when it was never sent (``sent_ns`` None), else resolved over the
        request lifetime since ``sent_ns`` (raises ``OrderUnresolved``)."""
        if sent_ns is None:
            return None
        intent = OrderIntent(order.client_order_id, order.symbol, order.side, order.quantity,
                             order.reduce_only, order.correlation_id, order.bar_seq)
        return await self.placer.resolve(intent, sent_ns)

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The venue's record of ``client_order_id`` (``None``: definitely unknown)."""
        return await self.placer.call(
            f"fetch_order {client_order_id}",
            lambda: self.client.fetch_order(client_order_id, symbol))

    def venue_order_id(self, client_order_id: str) -> str | None:
        """The venue's id of one of our orders the ledger tracks (``None``: unknown)."""
        o = self._cur.orders.get(client_order_id)
        return o.venue_order_id or None if o is not None else None

    def fill_status(self, client_order_id: str) -> OrderStatus:
        """``FILLED`` once the ledger saw the whole quantity filled, else
        ``PARTIALLY_FILLED`` (``FILLED`` for an order the ledger does not track)."""
        o = self._cur.orders.get(client_order_id)
        if o is None or o.complete:
            return OrderStatus.FILLED
        return OrderStatus.PARTIALLY_FILLED

    async def open_orders(self) -> list[str]:
        """Client order ids of the venue's working orders (ours and external)."""
        return [o.client_order_id for o in await self.open_venue_orders()]

    async def open_venue_orders(self) -> list[VenueOrder]:
        """The venue's working orders (ours and external)."""
        return list(await self.placer.call("fetch_open_orders",
                                           lambda: self.client.fetch_open_orders(None)))

    async def cancel_all(self, reason: str, now_ns: int, *, keep_protective: bool = False,
                         entries_only: bool = False) -> list[OrderCancelled]:
        """Cancel every working order at the venue (ours and external); with
        ``keep_protective`` our protective stops stay (the failsafe: positions stay
        protected while nobody trades); with ``entries_only`` only our orders that are
        not reduce-only (a breaker trip)."""
        w = self._w()
        events: list[OrderCancelled] = []
        for vo in await self.open_venue_orders():
            if keep_protective and lg.is_protective(vo.client_order_id):
                continue
            mine = w.orders.get(vo.client_order_id)
            if entries_only and (mine is None or mine.reduce_only):
                continue
            try:
                final = await self.placer.call(
                    f"cancel {vo.client_order_id}",
                    functools.partial(self.client.cancel_order, vo.client_order_id, vo.symbol))
            except VenueRejected as exc:  # e.g. filled meanwhile: reported as left over
                log.warning("cancel of %s refused: %s", vo.client_order_id, exc)
                continue
            o = w.orders.get(vo.client_order_id)
            if o is not None:
                w.orders[o.client_order_id] = o.model_copy(update={"status": final.status.value})
                lg.drop_pending_exit(w, o.client_order_id)
            if final.status is OrderStatus.CANCELLED:
                corr = o.correlation_id if o is not None else ""
                events.append(le.cancelled(self.name, vo.client_order_id, vo.symbol, reason,
                                           corr, now_ns))
        return events

    async def flatten(self, now_ns: int, command_id: str) -> list[VenueEvent]:
        """Close the mesh's positions (``flatten_scope = "account"``: every position the
        venue reports) with market orders (:meth:`Brackets.flatten`), then fetch the
        fills."""
        w = self._w()
        events: list[VenueEvent] = []
        venue = await self.placer.call("fetch_positions", self.client.fetch_positions)
        if self.flatten_scope == "account":
            targets = {s for s, q in venue.items() if q}
        else:
            targets = {s for s, p in w.positions.items() if p.quantity}
        for sym in sorted(targets):
            events += await self.brackets.flatten(w, sym, command_id, now_ns,
                                                  whole_account=self.flatten_scope == "account")
        self._alarms.extend(self.brackets.take_alarms())
        events += await self._poll(w, None, now_ns, protect=False)
        return events

    # ------------------------------------------------------------------ positions
    async def positions(self) -> dict[str, float]:
        """The mesh's signed positions at the venue (venue - baseline), flat omitted."""
        venue = await self.placer.call("fetch_positions", self.client.fetch_positions)
        return mesh_positions(venue, self._cur.baseline)

    def book_positions(self) -> dict[str, BookPosition]:
        """The ledger's positions (flat ones omitted)."""
        return {s: BookPosition(p.quantity, p.avg_price, p.realized_pnl)
                for s, p in self._cur.positions.items() if p.quantity}

    async def check_positions(self, now_ns: int) -> tuple[list[VenueEvent], list[VenueAlarm]]:
        """See :meth:`backend.venues.base.Venue.check_positions`: fills are applied,
        positions fetched, fills fetched again; when a fill came in between, the
        snapshot is not consistent and nothing is compared this time."""
        w = self._w()
        events = await self._poll(w, None, now_ns)
        venue = await self.placer.call("fetch_positions", self.client.fetch_positions)
        again = await self.poller.fetch_fills(w)
        if any(lg.fill_key(self.name, f.fill_id) not in w.fills for f in again):
            return events, []
        busy = {o.symbol for o in w.orders.values()
                if o.working and not lg.is_protective(o.client_order_id)}
        return events, position_alarms(w, venue, self.name, self.step, skip=busy)

    async def adopt_position(self, symbol: str, now_ns: int) -> PositionFix | None:
        """Set the ledger's ``symbol`` to what the venue holds beyond the baseline, after
        applying every fill up to now (so none is counted again later)."""
        w = self._w()
        await self._poll(w, None, now_ns, protect=False)
        venue = await self.placer.call("fetch_positions", self.client.fetch_positions)
        after = float(venue.get(symbol, 0.0)) - w.baseline.get(symbol, 0.0)
        before = w.position_qty(symbol)
        if lg.same_quantity(before, after, rel=1e-6):
            return None
        return PositionFix(symbol, before, after,
                           lg.set_position(w, symbol, after, self.name, now_ns))

    # ------------------------------------------------------------------ fills
    async def fills_of(self, client_order_ids: Collection[str]) -> list[OrderFilled]:
        """Fills the ledger applied for these orders, oldest first."""
        return await self.state.fills_of(client_order_ids)

    async def poll(self, now_ns: int, since_ns: int | None = None) -> list[VenueEvent]:
        """New fills and order updates; skipped (``[]``, no venue call) when no order is
        working and no ``since_ns`` is given (fills of external orders come with bars)."""
        if since_ns is None and not any(o.working for o in self._cur.orders.values()):
            return []
        return await self._poll(self._w(), since_ns, now_ns)

    async def _poll(self, w: Ledger, since_ns: int | None, now: int, *, protect: bool = True
                    ) -> list[VenueEvent]:
        events, touched = await self.poller.poll(w, since_ns, now)
        if protect:
            for sym in sorted(touched):
                events += await self.brackets.protect(w, sym, now)
            self._alarms.extend(self.brackets.take_alarms())
        return events

    # ------------------------------------------------------------------ bars
    async def on_bar(self, bar: BarClosed) -> list[VenueEvent]:
        """Day roll, fills and balances (once per bar time), mark, brackets.

        A bar whose seq is not above the last one of its symbol changes nothing.
        Raises ``VenueUnavailable`` (the agent retries the bar).
        """
        w = self._w()
        sym = bar.symbol
        if bar.seq <= w.last_bar_seq.get(sym, -1):
            return []
        lg.roll_day(w, bar.open_time)
        events: list[VenueEvent] = []
        if bar.open_time > self._synced_bar_time:
            events += await self._poll(w, None, bar.open_time)
            self._refresh_cash(w, await self.placer.call("fetch_balances",
                                                         self.client.fetch_balances))
        w.marks[sym] = bar.close
        w.last_bar_seq[sym] = bar.seq
        w.last_bar_time = max(w.last_bar_time, bar.open_time)
        exits = await self.brackets.on_bar(w, bar)
        events += exits
        if exits:  # a market exit fills at once: take its fill now
            events += await self._poll(w, None, bar.open_time)
        self._alarms.extend(self.brackets.take_alarms())
        self._synced_bar_time = max(self._synced_bar_time, bar.open_time)
        return events

    def portfolio(self, bar: BarClosed) -> PortfolioMarked:
        """Account state after ``bar``."""
        return lg.portfolio_mark(self._cur, bar.seq, bar.open_time, self.name, self.step)

    def current_mark(self) -> PortfolioMarked | None:
        """Account state at the last marks (``None`` before any bar)."""
        cur = self._cur
        if not cur.last_bar_seq:
            return None
        return lg.portfolio_mark(cur, max(cur.last_bar_seq.values()), cur.last_bar_time,
                                 self.name, self.step)
