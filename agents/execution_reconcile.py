"""The execution agent's reconciliation with its venue (run on start, before any order).

The comparisons are pure (:mod:`backend.reconcile`); this module asks the venue, writes
the corrections to the database (every one audited, action ``reconcile_*``, the
before/after in the reason) and returns the events and audit records the agent
publishes in one Redis transaction together with the venue's staged ledger.

Steps, in this order (each needs the previous one's result):

1. every non-final stored order is looked up at the venue by client order id; an
   order the venue has is adopted into the adapter's ledger (so its fills carry its
   correlation id and bracket);
2. fills: the venue is polled from the oldest non-final order's creation (live venues:
   fills that happened while the agent was down), and fills the adapter knows for those
   orders but the database lacks are recorded -- ``reconcile_fill``;
3. statuses: each stored order takes the venue's status -- ``reconcile_order``;
4. the venue's working orders unknown to the database are adopted as ``external`` --
   ``reconcile_external_order``;
5. positions: the ledger is set to the venue's positions, then the database to the
   ledger's -- ``reconcile_position``.

Any ``VenueError`` aborts the run (nothing is published; database corrections already
made stay, they are idempotent); the agent then stays off the ``orders`` stream and
retries.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from backend.messages import AuditRecorded, OrderFilled, PositionChanged, stable_id
from backend.persistence import Store
from backend.reconcile import (
    OPEN_IN_DB,
    change,
    missing_fills,
    order_fix,
    order_from_row,
    position_mismatches,
)
from backend.venues.base import Venue, VenueEvent

Record = Callable[[VenueEvent], Awaitable[None]]


@dataclass
class Reconciliation:
    """What one reconciliation found: events for ``trading_events``, audit records
    (already stored) for ``audit``, and counts per kind of correction."""

    events: list[VenueEvent] = field(default_factory=list)
    audits: list[AuditRecorded] = field(default_factory=list)
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

    async def run(self) -> Reconciliation:
        venue, store = self.venue, self.store
        rows = [r for r in await self.db(store.orders) if r["status"] in OPEN_IN_DB]  # type: ignore[attr-defined]
        found = {r["client_order_id"]: await venue.fetch_order(r["client_order_id"], r["symbol"])
                 for r in rows}
        for r in rows:  # 1. adopt into the ledger
            vo = found[r["client_order_id"]]
            if vo is not None:
                ev = venue.adopt(order_from_row(r, self.actor), vo, self.now)
                await self.record(ev)
                self.out.events.append(ev)
        await self._fills(rows)  # 2.
        for r in rows:  # 3. statuses (before = as stored when we started)
            fix = order_fix(r, found[r["client_order_id"]])
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
        for fix in await venue.sync_positions(self.now):
            await self.record(fix.event)
            self.out.events.append(fix.event)
            await self.audit("reconcile_position", fix.symbol, "corrected",
                             f"{venue.name} ledger {fix.symbol} set to the venue's position; "
                             f"{change(fix.before, fix.after)}")
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
                             f"database {m.symbol} set to the {venue.name} venue's position; "
                             f"{change(m.stored, m.reference)}")


async def reconcile(venue: Venue, store: Store, record: Record, actor: str, now: int
                    ) -> Reconciliation:
    """Compare and correct (see the module docstring); ``record`` persists one venue
    event the way the agent does; ``now`` (ns) stamps corrections and audits.

    Raises ``VenueError`` (``VenueUnavailable``) when the venue cannot be asked.
    """
    return await _Run(venue, store, record, actor, now).run()
