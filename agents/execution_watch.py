"""The execution agent's watch over a live venue, between its inputs.

Every ``venue.poll_s`` seconds, holding the venue lock:

* **poll** (:meth:`Watch.poll_once`): fills and order updates of working orders; when
  fills came in, an intrabar :class:`~backend.messages.PortfolioMarked` at the last
  marks follows them, so risk's circuit breaker and caps see a fill at once;
* every ``venue.unknown_recheck_s``: each order left ``UNKNOWN`` (its outcome stayed
  unknown, its symbol halted) is looked up again; one the venue shows after all is
  adopted (its fills follow by poll) and the resolution audited -- the symbol stays
  halted until a person clears it;
* every ``venue.position_check_s``: the venue's positions are compared with the books
  (:meth:`backend.venues.base.Venue.check_positions`); a difference raises a
  ``position_mismatch`` alarm and halts the symbol.

Each step has no input to acknowledge: its events are persisted (idempotent, ids from
the venue's ids), then published with the staged ledger in one Redis transaction.  A
crash in between leaves the ledger where it was; the next step redoes it and produces the
same ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from agents.base import REDIS_ERRORS
from agents.execution_port import ExecutionPort
from backend import channels
from backend.messages import AuditRecorded, OrderFilled, OrderStatus, now_ns, stable_id
from backend.runtime import failpoints
from backend.venues.base import VenueAlarm, VenueEvent
from backend.venues.broker import VenueError
from backend.venues.reconcile import order_from_row

__all__ = ["Watch"]


class Watch:
    """Polls, UNKNOWN re-checks and position checks of one execution agent."""

    def __init__(self, agent: ExecutionPort) -> None:
        self.agent = agent
        cfg = agent.settings.venue
        self.poll_s, self.recheck_s, self.check_s = (
            cfg.poll_s, cfg.unknown_recheck_s, cfg.position_check_s)

    async def run(self) -> None:
        """Until the agent stops (see the module docstring)."""
        agent = self.agent
        now = time.monotonic()
        next_recheck, next_check = now + self.recheck_s, now + self.check_s
        while not await agent.wait_stop(self.poll_s):
            async with agent.lock:
                try:
                    await self.poll_once()
                    now = time.monotonic()
                    if now >= next_recheck:
                        next_recheck = now + self.recheck_s
                        await self.recheck_unknown()
                    if now >= next_check:
                        next_check = now + self.check_s
                        await self.check_positions()
                except REDIS_ERRORS as exc:
                    assert agent.venue is not None
                    agent.venue.rollback()
                    agent.log.warning("watch step not saved (redis: %s); redone next time", exc)

    async def _commit(self, events: Sequence[VenueEvent],
                      audits: Sequence[AuditRecorded] = (),
                      alarms: Sequence[VenueAlarm] = ()) -> None:
        """Persist ``events``, then publish them (and ``audits``, ``alarms``) with the
        staged ledger in one transaction."""
        agent = self.agent
        assert agent.venue is not None and agent.redis is not None
        for ev in events:
            await agent.record(ev)
        pipe = agent.redis.pipeline(transaction=True)
        for ev in events:
            agent.emit(pipe, channels.TRADING_EVENTS, ev)
        for a in audits:
            agent.emit(pipe, channels.AUDIT, a)
        fills = [ev.fill_id for ev in events if isinstance(ev, OrderFilled)]
        mark = agent.venue.current_mark() if fills else None
        if mark is not None:
            # an intrabar mark: the breaker and the caps see a fill at once, not at the
            # next bar's close (its own id: the bar's mark keeps the bar's)
            mark = mark.model_copy(update={
                "id": stable_id("intrabar-mark", agent.venue.name, mark.bar_seq, *fills)})
            agent.emit(pipe, channels.TRADING_EVENTS, mark)
            pipe.set(channels.PORTFOLIO_KEY, mark.to_json())
        await agent.alarms(pipe, list(alarms))
        agent.venue.stage(pipe)
        failpoints.hit(agent.agent_id, "poll_before_commit")
        await pipe.execute()
        agent.venue.commit()

    async def poll_once(self) -> int:
        """One poll in its own transaction; returns the number of events."""
        agent = self.agent
        venue = agent.venue
        assert venue is not None
        venue.rollback()
        try:
            events = await venue.poll(now_ns())
        except (VenueError, TimeoutError) as exc:
            venue.rollback()
            agent.problems["poll"] = f"polling the {venue.name} venue failed: {exc}"
            return 0
        agent.problems.pop("poll", None)
        alarms = venue.take_alarms()
        if not events and not alarms:  # whatever else changed is fetched again next time
            venue.rollback()
            return 0
        await self._commit(events, alarms=alarms)
        return len(events)

    async def recheck_unknown(self) -> int:
        """Look the orders left UNKNOWN up again; adopt those the venue has.  Returns
        how many were resolved."""
        agent = self.agent
        venue, store = agent.venue, agent.store
        assert venue is not None
        rows = [r for r in await asyncio.to_thread(store.orders, OrderStatus.UNKNOWN)
                if not r.get("external")]
        if not rows:
            return 0
        venue.rollback()
        events: list[VenueEvent] = []
        audits: list[AuditRecorded] = []
        now = now_ns()
        for r in rows:
            coid = r["client_order_id"]
            try:
                found = await venue.fetch_order(coid, r["symbol"])
            except (VenueError, TimeoutError):
                continue
            if found is None:
                continue
            events.append(venue.adopt(order_from_row(r, agent.agent_id), found, now))
            audit = AuditRecorded(
                id=stable_id("audit", "unknown-resolved", coid), ts=now, source=agent.agent_id,
                correlation_id=r["correlation_id"] or coid, actor=agent.agent_id,
                action="order_unknown_resolved", decision="adopted",
                reason=(f"order {coid} left UNKNOWN is at the venue after all: "
                        f"{found.status.value}, filled {found.filled:.10g} of "
                        f"{found.quantity:.10g}; adopted (the symbol stays halted until "
                        "a person clears it)"), subject_id=coid)
            await asyncio.to_thread(store.record_audit_event, audit)
            audits.append(audit)
        if not events:
            venue.rollback()
            return 0
        with contextlib.suppress(VenueError, TimeoutError):  # else with the next poll
            events += await venue.poll(now, since_ns=min(int(r["created_ts"]) for r in rows))
        await self._commit(events, audits)
        return len(audits)

    async def check_positions(self) -> int:
        """Compare the venue's positions with the books; returns the alarms raised."""
        venue = self.agent.venue
        assert venue is not None
        venue.rollback()
        try:
            events, alarms = await venue.check_positions(now_ns())
        except (VenueError, TimeoutError):
            venue.rollback()
            return 0
        if not events and not alarms:
            venue.rollback()
            return 0
        await self._commit(events, alarms=alarms)
        return len(alarms)
