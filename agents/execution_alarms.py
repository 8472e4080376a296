"""What the execution agent does with a :class:`~backend.venues.base.VenueAlarm`.

An alarm that halts (an order whose outcome stayed unknown, a position the venue holds
differently) latches the symbol (:mod:`backend.mesh.symbol_halt`): the database copy first,
then Redis in the caller's transaction.  Every alarm is published on ``risk_alerts``
(level ``breach`` when it halts or refused an order, else ``warning``) and audited
(action ``venue_alarm``), so it reaches the API, the dashboard and whoever watches.

The ids are derived from the alarm, so a redelivered input raises the same alert once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from redis.asyncio.client import Pipeline

from backend import channels
from backend.mesh.symbol_halt import SymbolHalt, state_key
from backend.messages import AuditRecorded, Message, RiskAlertRaised, stable_id
from backend.persistence import Store
from backend.venues.base import VenueAlarm

__all__ = ["raise_alarms"]

log = logging.getLogger("agent.execution.alarms")


async def raise_alarms(alarms: Iterable[VenueAlarm], store: Store, source: str,
                       pipe: Pipeline, emit: Callable[[Pipeline, str, Message], None]
                       ) -> list[SymbolHalt]:
    """Latch, alert and audit each alarm (see the module docstring); returns the halts.

    Parameters
    ----------
    alarms
        From :meth:`backend.venues.base.Venue.take_alarms` (and the agent's own).
    store
        The agent's database (halts and audits are written before the transaction).
    source
        The agent id.
    pipe
        The transaction the Redis side is staged in.
    emit
        ``emit(pipe, channel, message)`` (the agent's).
    """
    halts = []
    for a in alarms:
        key = stable_id("venue-alarm", a.kind, a.symbol, a.client_order_id, a.reason)
        if a.halts:
            halt = SymbolHalt(symbol=a.symbol, kind=a.kind, reason=a.reason[:1000], by=source,
                              client_order_id=a.client_order_id)
            await asyncio.to_thread(store.put_state, state_key(a.symbol),
                                    halt.model_dump(mode="json"))
            halt.stage(pipe)
            halts.append(halt)
        log.critical("%s %s: %s", a.kind, a.symbol, a.reason)
        alert = RiskAlertRaised(
            id=key, source=source, correlation_id=a.client_order_id or a.symbol,
            metric=a.kind, level=a.level, value=1.0, limit=1.0,
            ratio=1.0, symbol=a.symbol, reason=a.reason[:500])
        audit = AuditRecorded(
            id=stable_id("audit", key), source=source, correlation_id=alert.correlation_id,
            actor=source, action="venue_alarm",
            decision=f"{a.kind}: symbol halted" if a.halts else a.kind,
            reason=a.reason[:1000], subject_id=a.client_order_id or a.symbol)
        await asyncio.to_thread(store.record_audit_event, audit)
        emit(pipe, channels.RISK_ALERTS, alert)
        emit(pipe, channels.AUDIT, audit)
    return halts
