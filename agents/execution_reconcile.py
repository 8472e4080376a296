"""The execution agent's reconciliation with its venue (run on start, before any order).

The comparisons are pure (:mod:`backend.venues.reconcile`); this module asks the venue, writes
the corrections to the database (every one audited, action ``reconcile_*``, the
before/after in the reason) and returns the events, audit records and alarms the agent
publishes in one Redis transaction together with the venue's staged ledger.

Steps, in this order (each needs the previous one's result):

1. **adopt**: every order the venue's local state (ledger, book) does not know --
   whatever its database status, placed within :data:`HORIZON_DAYS` -- and every
   non-final stored order is looked up at the venue (an order that was sent is resolved
   by the UNKNOWN protocol over the venue's request lifetime; one never sent is not
   asked for); an order the venue has is adopted into the local state with its stop and
   target from the stored order, so its fills carry its correlation id and bracket;
2. **fills**: the venue is polled from the oldest of those orders' creation (fills that
   happened while the agent was down), and fills the adapter knows for those orders but
   the database lacks are recorded -- ``reconcile_fill``;
3. **statuses**: each stored order takes the venue's status -- ``reconcile_order``; an
   order established as never having landed forgets its send (``sent_ts``) so it can be
   sent without being resolved again;
4. **external**: the venue's working orders unknown to the database are adopted as
   ``external`` -- ``reconcile_external_order``;
5. **positions**: the venue's positions are compared with the books on a consistent
   snapshot (every venue fill up to it applied); a difference is a
   ``position_mismatch`` alarm that halts the symbol, never an overwrite; the database's
   positions are then set to the local state's -- ``reconcile_position``.

Idempotent and crash-safe: the database writes are inserts-or-ignore and forced status
sets, the local state changes only with the final Redis transaction, and a lost
adoption is redone because step 1 does not depend on the database status.  A crash at
any point, repeated, ends in the same books (armed failpoints ``reconcile_adopted``,
``reconcile_fills``, ``reconcile_statuses``, ``reconcile_before_commit`` let the tests
and drills prove it).  Any ``VenueUnavailable`` aborts the run (nothing is published);
the agent then stays off the ``orders`` stream and retries.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from backend.messages import (
    NS_PER_DAY,
    AuditRecorded,
    OrderFilled,
    OrderStatus,
    PositionChanged,
    stable_id,
)
from backend.persistence import Store
from backend.runtime import failpoints
from backend.venues.base import Venue, VenueAlarm, VenueEvent
from backend.venues.broker import OrderUnresolved, VenueOrder
from backend.venues.reconcile import (
    OPEN_IN_DB,
    change,
    missing_fills,
    order_fix,
    order_from_row,
    position_mismatches,
)

Record = Callable[[VenueEvent], Awaitable[None]]

#: Orders unknown to the venue's local state are looked up when placed this recently.
HORIZON_DAYS = 7


@dataclass
class Reconciliation:
    """What one reconciliation found: events for ``trading_events``, audit records
    (already stored) for ``audit``, alarms (symbols to halt), and counts per kind of
    correction."""

    events: list[VenueEvent] = field(default_factory=list)
    audits: list[AuditRecorded] = field(default_factory=list)
    alarms: list[VenueAlarm] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the log."""
        if not self.counts:
            return "nothing to correct"
        return ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))


class _Run:
    def __init__(self, venue: Venue, store: Store, record: Record, actor: str, now: int):
        self.venue, self.store, self.record, self.actor, self.now = venue, store, record, actor, now
        self.out = Reconciliation()

    async def db(self, fn: Callable[..., object], *args: object, **kw: object) -> object:
        return await asyncio.to_thread(functools.partial(fn, *args, **kw))

    async def audit(self, action: str, subject: str, decision: str, reason: str,
                    correlation_id: str = "") -> None:
        msg = AuditRecorded(
            id=stable_id("reconcile", self.actor, action, subject, reason, self.now),
            ts=self.now, source=self.actor, correlation_id=correlation_id or subject,
            actor=self.actor, action=action, decision=decision, reason=reason[:1000],
            subject_id=subject,
        )
        await self.db(self.store.record_audit_event, msg)
        self.out.audits.append(msg)
        self.out.counts[action] = self.out.counts.get(action, 0) + 1

    async def _rows(self) -> list[dict]:
        """Step 1's orders: every non-final one, and every one the local state does not
        know that may be at the venue (sent, not refused, within the horizon)."""
        known = self.venue.known_orders()
        horizon = self.now - HORIZON_DAYS * NS_PER_DAY
        def lost(r: dict) -> bool:  # may be at the venue, unknown to the local state
            return (r["client_order_id"] not in known and not r["external"]
                    and r["status"] != OrderStatus.REJECTED.value
                    and int(r["created_ts"]) >= horizon
                    and (r.get("sent_ts") is not None or bool(r["venue_order_id"])))

        return [r for r in await self.db(self.store.orders)  # type: ignore[attr-defined]
                if r["status"] in OPEN_IN_DB or lost(r)]

    async def _lookup(self, r: dict) -> VenueOrder | None:
        order = order_from_row(r, self.actor)
        sent = r.get("sent_ts")
        if r["status"] != OrderStatus.NEW.value:  # UNKNOWN, or the venue answered: sent
            sent = sent or int(r["updated_ts"] or r["created_ts"])
        try:
            return await self.venue.lookup(order, None if sent is None else int(sent))
        except OrderUnresolved as exc:
            self.out.alarms.append(VenueAlarm(r["symbol"], "order_unknown", str(exc),
                                              r["client_order_id"]))
            self.unresolved.add(r["client_order_id"])
            return None

    async def run(self) -> Reconciliation:
        store = self.store
        self.unresolved: set[str] = set()
        rows = await self._rows()
        found = {r["client_order_id"]: await self._lookup(r) for r in rows}
        for r in rows:  # 1. adopt into the local state (stop and target from the row)
            vo = found[r["client_order_id"]]
            if vo is not None:
                ev = self.venue.adopt(order_from_row(r, self.actor), vo, self.now)
                await self.record(ev)
                self.out.events.append(ev)
        failpoints.crash_if_armed(self.actor, "reconcile_adopted")
        await self._fills(rows)  # 2.
        failpoints.crash_if_armed(self.actor, "reconcile_fills")
        for r in rows:  # 3. statuses (before = as stored when we started)
            coid = r["client_order_id"]
            if coid in self.unresolved:
                continue
            vo = found[coid]
            if vo is None and r.get("sent_ts") is not None and r["status"] in OPEN_IN_DB:
                await self.db(store.clear_order_sent, coid)  # never landed: send freely
            if vo is None and r["status"] not in OPEN_IN_DB:
                continue  # final, and the venue no longer shows it: keep what we know
            fix = order_fix(r, vo)
            if fix is None:
                continue
            now_row = await self.db(store.get_order, fix.client_order_id) or r
            if now_row["status"] != fix.after:  # type: ignore[index]
                await self.db(store.update_order_status, fix.client_order_id, fix.after,
                              fix.venue_order_id, f"reconciled: {fix.why}", ts=self.now,
                              force=True)
            await self.audit("reconcile_order", fix.client_order_id, "corrected",
                             f"{fix.why}; {change(fix.before, fix.after)}",
                             r["correlation_id"] or "")
        failpoints.crash_if_armed(self.actor, "reconcile_statuses")
        await self._external()  # 4.
        await self._positions()  # 5.
        return self.out

    async def _fills(self, rows: list[dict]) -> None:
        venue, store = self.venue, self.store
        since = min((int(r["created_ts"]) for r in rows), default=None)
        polled = await venue.poll(self.now, since_ns=since)
        coids = {r["client_order_id"] for r in rows}
        coids |= {ev.client_order_id for ev in polled if isinstance(ev, OrderFilled)}
        stored = {f["fill_id"] for c in sorted(coids)
                  for f in await self.db(store.order_fills, c)}  # type: ignore[attr-defined]
        for ev in polled:
            await self.record(ev)
        self.out.events += polled
        fills = [ev for ev in polled if isinstance(ev, OrderFilled)]
        recorded = {f.fill_id for f in fills}
        fills += await venue.fills_of([r["client_order_id"] for r in rows])
        for f in missing_fills(stored, fills):
            if f.fill_id not in recorded:
                await self.record(f)
            await self.audit(
                "reconcile_fill", f.client_order_id, "recorded",
                f"fill {f.fill_id} missed while down: {f.side.value} {f.quantity:.10g} "
                f"{f.symbol} @ {f.price:.10g} at {f.fill_time}; {change('absent', 'recorded')}",
                f.correlation_id)

    async def _external(self) -> None:
        for vo in await self.venue.open_venue_orders():
            if await self.db(self.store.get_order, vo.client_order_id) is not None:
                continue
            await self.db(self.store.record_external_order, vo.client_order_id, vo.symbol,
                          vo.side.value, vo.quantity, vo.status.value, vo.venue_order_id,
                          "adopted from the venue on reconciliation", ts=self.now)
            await self.audit(
                "reconcile_external_order", vo.client_order_id, "adopted",
                f"working at the venue, unknown to the database: {vo.side.value} "
                f"{vo.quantity:.10g} {vo.symbol} (venue id {vo.venue_order_id}); "
                f"{change('absent', 'external ' + vo.status.value)}")

    async def _positions(self) -> None:
        venue, store = self.venue, self.store
        events, alarms = await venue.check_positions(self.now)
        for ev in events:
            await self.record(ev)
        self.out.events += events
        self.out.alarms += alarms
        book = venue.book_positions()
        stored = {r["symbol"]: float(r["quantity"]) for r in await self.db(store.positions)}  # type: ignore[attr-defined]
        for m in position_mismatches(stored, {s: p.quantity for s, p in book.items()}):
            p = book.get(m.symbol)
            ev = PositionChanged(
                id=stable_id("reconcile-position", m.symbol, m.stored, m.reference, self.now),
                ts=self.now, source=self.actor, symbol=m.symbol, quantity=m.reference,
                avg_price=p.avg_price if p else 0.0, realized_pnl=p.realized_pnl if p else 0.0,
            )
            await self.record(ev)
            self.out.events.append(ev)
            await self.audit("reconcile_position", m.symbol, "corrected",
                             f"database {m.symbol} set to the {venue.name} venue's books; "
                             f"{change(m.stored, m.reference)}")


async def reconcile(venue: Venue, store: Store, record: Record, actor: str, now: int
                    ) -> Reconciliation:
    """Compare and correct (see the module docstring); ``record`` persists one venue
    event the way the agent does; ``now`` (ns) stamps corrections and audits.

    Raises ``VenueError`` (``VenueUnavailable``) when the venue cannot be asked; an
    order whose outcome stays unknown is an alarm in the result, not an error.
    """
    return await _Run(venue, store, record, actor, now).run()
