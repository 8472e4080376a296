"""A person resolves a halted symbol: the execution agent's side of ``tradingmesh resolve``.

A symbol is halted (:mod:`backend.mesh.symbol_halt`) when an order's outcome stayed unknown or
the venue holds another position than the books.  The operator looks at the venue and
sends a :class:`~backend.messages.ResolveSymbol` (durable, on ``orders``):

1. every client order id in ``not_placed`` that is ``UNKNOWN`` for the symbol is looked up
   once more -- found: adopted (the person was wrong, nothing is lost); absent: set
   ``REJECTED`` with the person's reason;
2. with ``adopt_venue_position`` the books' position takes what the venue holds (every
   venue fill up to now applied first, so none is counted twice later);
3. what is left is checked: orders still ``UNKNOWN`` for the symbol, and the venue's
   position against the books;
4. nothing left: the halt is cleared (database first, then Redis) -- ``symbol_resumed``;
   else it stays -- ``symbol_still_halted`` with what is left.

Every step is audited; the final audit record's ``correlation_id`` is the command's id
(the CLI and the API wait for it).
"""

from __future__ import annotations

import asyncio

from redis.asyncio.client import Pipeline

from agents.execution_port import ExecutionPort
from backend import channels
from backend.mesh.symbol_halt import state_key
from backend.messages import (
    AuditRecorded,
    OrderRejected,
    OrderStatus,
    ResolveSymbol,
    now_ns,
    stable_id,
)
from backend.venues.base import VenueEvent
from backend.venues.reconcile import order_from_row

__all__ = ["resolve_symbol"]


async def resolve_symbol(agent: ExecutionPort, cmd: ResolveSymbol, pipe: Pipeline) -> None:
    """Carry ``cmd`` out (see the module docstring); stages events, audits and the halt's
    removal in ``pipe``.  Raises ``VenueUnavailable`` (the command is kept and retried)."""
    venue, store, sym = agent.venue, agent.store, cmd.symbol
    assert venue is not None
    now = now_ns()
    events: list[VenueEvent] = []
    notes: list[str] = []

    def audit(action: str, decision: str, reason: str, subject: str) -> AuditRecorded:
        return AuditRecorded(
            id=stable_id("audit", action, cmd.id, subject), ts=now, source=agent.agent_id,
            correlation_id=cmd.id, actor=cmd.actor, action=action, decision=decision,
            reason=reason[:1000], subject_id=subject)

    audits: list[AuditRecorded] = []
    for coid in cmd.not_placed:
        row = await asyncio.to_thread(store.get_order, coid)
        if row is None or row["symbol"] != sym or row["status"] != OrderStatus.UNKNOWN.value:
            notes.append(f"{coid}: not an UNKNOWN order of {sym}, left as it is")
            continue
        found = await venue.fetch_order(coid, sym)
        if found is not None:
            events.append(venue.adopt(order_from_row(row, agent.agent_id), found, now))
            audits.append(audit("order_unknown_resolved", "adopted", (
                f"{cmd.actor} said {coid} is not at the venue, but it is "
                f"({found.status.value}): adopted"), coid))
            continue
        events.append(OrderRejected(
            id=stable_id("exec", "not-placed", coid), ts=now, source=agent.agent_id,
            correlation_id=row["correlation_id"] or coid, client_order_id=coid, symbol=sym,
            reason=f"not at the venue (confirmed by {cmd.actor}: {cmd.reason})"[:500]))
        await asyncio.to_thread(store.clear_order_sent, coid)
        audits.append(audit("order_unknown_resolved", "rejected",
                            f"{cmd.actor}: {coid} is not at the venue: {cmd.reason}", coid))
    if cmd.adopt_venue_position:
        fix = await venue.adopt_position(sym, now)
        if fix is not None:
            events.append(fix.event)
            audits.append(audit("position_adopted", "corrected", (
                f"{cmd.actor}: books' {sym} set to the venue's ({cmd.reason}); "
                f"before={fix.before:.10g} after={fix.after:.10g}"), sym))
    for ev in events:  # recorded before what is left is judged
        await agent.record(ev)
        agent.emit(pipe, channels.TRADING_EVENTS, ev)
    polled, left = await _what_is_left(agent, sym, now)
    for ev in polled:
        await agent.record(ev)
        agent.emit(pipe, channels.TRADING_EVENTS, ev)
    if left:
        final = audit("symbol_still_halted", "halted", "; ".join([*notes, *left]), sym)
    else:
        await asyncio.to_thread(store.delete_state, state_key(sym))
        pipe.hdel(channels.SYMBOL_HALTS_KEY, sym)
        final = audit("symbol_resumed", "resumed", "; ".join(
            [f"{cmd.actor}: {cmd.reason}", *notes]), sym)
    for a in [*audits, final]:
        await asyncio.to_thread(store.record_audit_event, a)
        agent.emit(pipe, channels.AUDIT, a)
    agent.log.warning("%s %s: %s", final.action, sym, final.reason)


async def _what_is_left(agent: ExecutionPort, sym: str, now: int
                        ) -> tuple[list[VenueEvent], list[str]]:
    """The events of the fills applied while checking, and why ``sym`` must stay halted
    (empty: nothing)."""
    venue, store = agent.venue, agent.store
    assert venue is not None
    unknown = [r["client_order_id"] for r in await asyncio.to_thread(
        store.orders, OrderStatus.UNKNOWN, sym) if not r["external"]]
    left = [f"order {c} is still UNKNOWN (resolve it with --not-placed {c} once the venue "
            "shows it is not there)" for c in unknown]
    events, alarms = await venue.check_positions(now)
    left += [a.reason for a in alarms if a.symbol == sym and a.kind == "position_mismatch"]
    return events, left
