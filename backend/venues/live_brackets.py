"""Brackets of a live venue's positions: the protective stop resting at the venue, and
exits retried until the position is flat.

**Protective stop.**  Where the client supports it
(:attr:`~backend.venues.broker.BrokerClient.supports_stop_orders`), every position with
a stop loss has a stop-market order resting *at the venue* for the position's quantity
(capped by what the venue holds), so the position stays protected while the execution
agent is down.  It is kept in step with the ledger: when the position changes (an add,
a partial exit) or goes flat, the stop is cancelled and, if needed, replaced by the
next one (``tm-p-…`` client order ids numbered by attempt,
:func:`~backend.venues.ledger.protect_coid`).  When it triggers, its fill arrives by
poll like any other and closes the position (exit reason ``stop_loss``).

A protective stop the venue refuses because the market is already past it
(:class:`~backend.venues.broker.StopWouldTrigger`) means the stop is hit: the position
exits at once.

**Exits.**  The take profit, and the stop loss where no protective stop rests (or the
venue's stop did not take the position out), are checked against every bar: a hit
cancels the protective stop first (on a spot account it holds the coins; if it traded
meanwhile there is nothing left to do), then sends a reduce-only market order for what
the ledger holds, capped by what the venue holds.  An exit that ends without closing
the position (a market order that expired partly filled, a cancellation, a rejection)
is followed by the next attempt with a new client order id
(:func:`~backend.venues.ledger.exit_coid`); a found terminal order never counts as done.

Every order goes through the :class:`~backend.venues.placement.Placer` (journaled, an
unknown outcome resolved, never guessed).  What cannot be settled here becomes a
:class:`~backend.venues.base.VenueAlarm` for the execution agent.

Units: quantities base units, prices quote/base, times ns UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from backend.messages import BarClosed, ExitReason, OrderStatus, Side
from backend.venues import ledger as lg
from backend.venues import live_orders as le
from backend.venues.base import VenueAlarm, VenueEvent
from backend.venues.broker import (
    BrokerClient,
    OrderUnresolved,
    StopWouldTrigger,
    VenueRejected,
)
from backend.venues.ledger import Ledger, LedgerOrder, LedgerPosition
from backend.venues.placement import OrderIntent, Placer

__all__ = ["EXIT_ATTEMPTS_PER_BAR", "FLATTEN_ATTEMPTS", "Brackets"]

log = logging.getLogger("venue.brackets")

#: Exits sent for one position on one bar (each after the previous one expired).
EXIT_ATTEMPTS_PER_BAR = 3
#: Closes the kill switch sends per symbol (one more after each that expired unfilled).
FLATTEN_ATTEMPTS = 3

Refresh = Callable[[Ledger], Awaitable[list[VenueEvent]]]


class Brackets:
    """Protective stops and bracket exits of one live venue (see the module docstring).

    Parameters
    ----------
    venue
        The venue's name (part of the client order ids).
    client
        The venue's client.
    placer
        Sends orders with the UNKNOWN protocol.
    held
        ``await held(symbol)``: what the venue holds of ``symbol`` for the mesh (signed
        base units, holdings from before the mesh left out).
    refresh
        ``await refresh(ledger)``: apply the venue's new fills to ``ledger`` and return
        their events (used between exit attempts).
    step
        ``step(symbol)``: the venue's quantity step; a position below it is dust, left
        alone (no exit, no protective stop).
    """

    def __init__(self, venue: str, client: BrokerClient, placer: Placer,
                 held: Callable[[str], Awaitable[float]], refresh: Refresh,
                 step: Callable[[str], float] = lambda _: 0.0) -> None:
        self.venue, self.client, self.placer = venue, client, placer
        self.held, self.refresh, self.step = held, refresh, step
        self._alarms: list[VenueAlarm] = []

    def take_alarms(self) -> list[VenueAlarm]:
        """Alarms raised since the last call."""
        out, self._alarms = self._alarms, []
        return out

    @property
    def native(self) -> bool:
        """True when protective stops rest at the venue."""
        return bool(getattr(self.client, "supports_stop_orders", False))

    # ------------------------------------------------------------------ bars
    async def on_bar(self, w: Ledger, bar: BarClosed) -> list[VenueEvent]:
        """Exit ``bar.symbol``'s position if the bar hit a bracket, then keep its
        protective stop in step."""
        sym = bar.symbol
        events: list[VenueEvent] = []
        pos = w.positions.get(sym)
        if pos is not None and abs(pos.quantity) < self.step(sym):
            pos = None  # dust
        hit = lg.bracket_hit(pos, bar.high, bar.low) if pos is not None else None
        if hit is not None:
            events += await self.exit(w, sym, hit, bar.seq, bar.open_time)
        events += await self.protect(w, sym, bar.open_time)
        return events

    async def exit(self, w: Ledger, sym: str, reason: ExitReason, bar_seq: int, now: int
                   ) -> list[VenueEvent]:
        """Close ``sym``'s position with reduce-only market orders (see the module
        docstring); at most :data:`EXIT_ATTEMPTS_PER_BAR` attempts now."""
        events, traded = await self.unprotect(w, sym, now)
        if traded:  # the venue's stop took (part of) it: decide again on its fills
            return events
        for _ in range(EXIT_ATTEMPTS_PER_BAR):
            pos = w.positions.get(sym)
            if pos is None or abs(pos.quantity) <= self.step(sym) * 0.999999 or pos.exit_coid:
                break
            coid = lg.exit_coid(self.venue, pos.entry_coid or f"{sym}@{bar_seq}", reason,
                                pos.exit_attempt)
            used = w.orders.get(coid)
            if used is not None and not used.working:  # an earlier exit's id: never reuse
                w.positions[sym] = pos.model_copy(update={"exit_attempt": pos.exit_attempt + 1})
                continue
            if await self.placer.journal.last_sent(coid) is not None:
                qty = abs(pos.quantity)  # sent before (a redone bar): resolved, not resent
            else:
                qty = await self._closable(sym, pos)
            if qty == 0.0:
                self._alarms.append(VenueAlarm(sym, "position_mismatch", (
                    f"{reason.value} exit of {pos.quantity:.10g} {sym}: the venue holds none "
                    "of it; symbol halted: check the venue, then `tradingmesh resolve` it")))
                break
            side = Side.SELL if pos.quantity > 0 else Side.BUY
            intent = OrderIntent(coid, sym, side, qty, True, pos.correlation_id, bar_seq,
                                 exit_reason=reason)
            try:
                found = await self.placer.place(intent)
            except VenueRejected as exc:
                events.append(le.rejected(self.venue, coid, sym, str(exc), pos.correlation_id,
                                          now))
                w.positions[sym] = pos.model_copy(update={"exit_attempt": pos.exit_attempt + 1})
                break
            except OrderUnresolved as exc:  # pending until resolved: no second exit
                w.positions[sym] = pos.model_copy(update={"exit_coid": coid})
                self._alarms.append(VenueAlarm(sym, "order_unknown", str(exc), coid))
                break
            o = le.track(w, found, reduce_only=True, correlation_id=pos.correlation_id,
                         bar_seq=bar_seq, exit_reason=reason, requested=qty)
            events.append(le.status_event(self.venue, o, found.reason, now))
            if found.final and found.status is not OrderStatus.FILLED:
                # ended without closing: its fills count, the next attempt goes now
                lg.drop_pending_exit(w, coid)
                cur = w.positions[sym]
                w.positions[sym] = cur.model_copy(update={"exit_attempt": pos.exit_attempt + 1})
                events += await self.refresh(w)
                continue
            w.positions[sym] = w.positions[sym].model_copy(update={"exit_coid": coid})
            break
        return events

    async def flatten(self, w: Ledger, sym: str, command_id: str, now: int, *,
                      whole_account: bool = False) -> list[VenueEvent]:
        """The kill switch's close of ``sym``: what the ledger holds capped by what the
        venue holds beyond the baseline (``whole_account``: everything the venue holds),
        with market orders ``tm-k-…`` (:func:`~backend.venues.ledger.flatten_coid`) at
        most once per attempt; a close that ended without filling completely is followed
        by the next, at most :data:`FLATTEN_ATTEMPTS`."""
        events: list[VenueEvent] = []
        for attempt in range(FLATTEN_ATTEMPTS):
            held = await self.held(sym)
            mine = held + w.baseline.get(sym, 0.0) if whole_account else w.position_qty(sym)
            qty = mine if whole_account else (
                0.0 if mine * held <= 0 else min(abs(mine), abs(held)) * (1 if mine > 0 else -1))
            if qty == 0.0:
                break
            side = Side.SELL if qty > 0 else Side.BUY
            coid = lg.flatten_coid(command_id, sym, attempt)
            intent = OrderIntent(coid, sym, side, abs(qty), True, command_id,
                                 w.last_bar_seq.get(sym, 0), exit_reason=ExitReason.FLATTEN)
            try:
                found = await self.placer.place(intent)
            except VenueRejected as exc:
                events.append(le.rejected(self.venue, coid, sym, str(exc), command_id, now))
                break
            except OrderUnresolved as exc:
                self._alarms.append(VenueAlarm(sym, "order_unknown", str(exc), coid))
                break
            o = le.track(w, found, reduce_only=True, correlation_id=command_id,
                         bar_seq=intent.bar_seq, exit_reason=ExitReason.FLATTEN,
                         requested=abs(qty))
            events.append(le.status_event(self.venue, o, found.reason, now))
            events += await self.refresh(w)
            if not (found.final and found.status is not OrderStatus.FILLED):
                break
        return events

    async def _closable(self, sym: str, pos: LedgerPosition) -> float:
        """What an exit of ``pos`` may sell/buy: the ledger's quantity capped by what
        the venue holds (a fee taken in the base asset, coins moved by hand)."""
        held = await self.held(sym)
        if held * pos.quantity <= 0:
            return 0.0
        return min(abs(pos.quantity), abs(held))

    # ------------------------------------------------------------------ protection
    def _resting(self, w: Ledger, sym: str) -> list[LedgerOrder]:
        return [o for o in w.orders.values()
                if o.symbol == sym and lg.is_protective(o.client_order_id) and o.working]

    async def protect(self, w: Ledger, sym: str, now: int) -> list[VenueEvent]:
        """Make the venue's protective stop for ``sym`` match the ledger's position
        (cancel a stale one, rest a new one); nothing where the venue has no stops."""
        if not self.native:
            return []
        pos = w.positions.get(sym)
        want = 0.0
        if (pos is not None and abs(pos.quantity) >= max(self.step(sym), 1e-12)
                and pos.stop_loss is not None and not pos.exit_coid):
            want = abs(pos.quantity)
        events: list[VenueEvent] = []
        keep = None
        for o in self._resting(w, sym):
            if (want and pos is not None and o.client_order_id == pos.protect_coid
                    and lg.same_quantity(o.requested, want) and o.stop_loss == pos.stop_loss):
                keep = o
                continue
            evs, traded = await self._cancel(w, o, now, "protective stop replaced")
            events += evs
            if traded:
                return events
        pos = w.positions.get(sym)
        if keep is not None or not want or pos is None or pos.stop_loss is None:
            return events
        if lg.same_quantity(pos.protect_refused, want):
            return events  # refused for this quantity already: the bar check guards it
        qty = await self._closable(sym, pos)
        if qty == 0.0:
            return events
        attempt = pos.protect_attempt + 1
        coid = lg.protect_coid(self.venue, pos.entry_coid or sym, attempt)
        side = Side.SELL if pos.quantity > 0 else Side.BUY
        bar_seq = w.last_bar_seq.get(sym, 0)
        intent = OrderIntent(coid, sym, side, qty, True, pos.correlation_id, bar_seq,
                             stop_price=pos.stop_loss, exit_reason=ExitReason.STOP_LOSS)
        try:
            found = await self.placer.place(intent)
        except StopWouldTrigger as exc:  # the market is past the stop already: it is hit
            events.append(le.rejected(self.venue, coid, sym, str(exc), pos.correlation_id,
                                      now))
            w.positions[sym] = pos.model_copy(update={"protect_attempt": attempt})
            return events + await self.exit(w, sym, ExitReason.STOP_LOSS, bar_seq, now)
        except VenueRejected as exc:
            events.append(le.rejected(self.venue, coid, sym, str(exc), pos.correlation_id,
                                      now))
            w.positions[sym] = pos.model_copy(
                update={"protect_attempt": attempt, "protect_refused": want})
            self._alarms.append(VenueAlarm(sym, "protection_failed", (
                f"{self.venue} refused the protective stop {coid} ({side.value} {qty:.10g} "
                f"{sym} at {pos.stop_loss:.10g}): {exc}; the execution agent's bar check "
                "guards the position while it runs"), coid))
            return events
        except OrderUnresolved as exc:
            w.positions[sym] = pos.model_copy(
                update={"protect_coid": coid, "protect_attempt": attempt})
            self._alarms.append(VenueAlarm(sym, "order_unknown", str(exc), coid))
            return events
        o = le.track(w, found, reduce_only=True, correlation_id=pos.correlation_id,
                     bar_seq=bar_seq, exit_reason=ExitReason.STOP_LOSS,
                     stop_loss=pos.stop_loss, requested=want)
        w.positions[sym] = w.positions[sym].model_copy(
            update={"protect_coid": coid, "protect_attempt": attempt})
        events.append(le.status_event(self.venue, o, found.reason, now))
        return events

    async def unprotect(self, w: Ledger, sym: str, now: int
                        ) -> tuple[list[VenueEvent], bool]:
        """Cancel ``sym``'s protective stops.  Returns their events and whether one of
        them traded before it could be cancelled (its fills come by poll)."""
        events: list[VenueEvent] = []
        traded = False
        for o in self._resting(w, sym):
            evs, t = await self._cancel(w, o, now, "protective stop withdrawn for an exit")
            events += evs
            traded = traded or t
        return events, traded

    async def _cancel(self, w: Ledger, o: LedgerOrder, now: int, reason: str
                      ) -> tuple[list[VenueEvent], bool]:
        coid, sym = o.client_order_id, o.symbol
        try:
            final = await self.placer.call(f"cancel {coid}",
                                           lambda: self.client.cancel_order(coid, sym))
        except VenueRejected as exc:  # unknown at the venue: it never rested
            log.warning("cancel of protective stop %s refused: %s", coid, exc)
            final = None
        status = final.status if final is not None else OrderStatus.CANCELLED
        w.orders[coid] = o.model_copy(update={"status": status.value})
        events: list[VenueEvent] = []
        if status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
            lg.drop_pending_exit(w, coid)
            events.append(le.cancelled(self.venue, coid, sym, reason, o.correlation_id, now))
        traded = final is not None and final.filled > o.filled * (1 + lg.REL_EPS) + 1e-12
        return events, traded
