"""Kill switch (emergency stop), the halt latch's reset, and its durable mirror.

Emergency stop, in this order:

1. latch HALTED in Redis (``mesh:halt``, kept if already set) and in the database;
   from then on risk rejects every signal and execution denies every new order;
2. audit it (database and the ``audit`` stream);
3. append a flattening :class:`~backend.messages.CancelAllOrders` to the durable
   ``orders`` stream: execution reads it through its consumer group, so it is carried
   out even if pub/sub messages are lost or execution is down right now (it runs when
   execution is back); any order queued before it is either denied (latch) or cancelled
   by it;
4. wait (bounded) for execution's :class:`~backend.messages.KillSwitchExecuted` on the
   ``trading_events`` stream and report what was cancelled, what was closed and what is
   left.

Nothing here depends on a single PUBLISH being delivered.  Trading resumes only through
:func:`reset_halt` (explicit, with a reason, audited).
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis

from backend import channels
from backend.bus import DATA_FIELD, Bus
from backend.mesh.halt import HaltState, sync_latch
from backend.mesh.halt import latch as halt_latch
from backend.mesh.halt import reset as halt_reset
from backend.messages import (
    NON_FINAL_STATUSES,
    AuditRecorded,
    CancelAllOrders,
    KillSwitchExecuted,
    decode,
)
from backend.persistence import Store
from backend.rest.models import (
    EmergencyStopResult,
    FlattenedPosition,
    ResetResult,
)
from orchestrator.views import read_portfolio_mark

log = logging.getLogger("orchestrator.killswitch")

SOURCE = "orchestrator"


async def _audit(redis: Redis, store: Store, audit: AuditRecorded) -> None:
    await asyncio.to_thread(store.record_audit_event, audit)
    await Bus(redis, SOURCE).publish(channels.AUDIT, audit)


async def emergency_stop(
    redis: Redis, store: Store, *, reason: str, actor: str, wait_s: float = 10.0,
) -> EmergencyStopResult:
    """Halt trading, cancel every open order, flatten every position; report.

    Parameters
    ----------
    redis, store
        The mesh's Redis and database.
    reason, actor
        Why and who (audited; ``actor`` e.g. ``"api"`` or ``"cli"``).
    wait_s
        Seconds to wait for execution to confirm (0 = do not wait).

    Returns
    -------
    EmergencyStopResult
        ``confirmed`` False when execution did not report within ``wait_s``; then the
        lists show what the database and the last portfolio mark still hold.

    Raises
    ------
    redis.exceptions.ConnectionError
        Redis is unreachable: nothing could be latched (the caller must say so).
    """
    cmd = CancelAllOrders(source=SOURCE, reason=f"kill switch: {reason}"[:500], flatten=True)
    audit = AuditRecorded(source=SOURCE, actor=actor, action="emergency_stop",
                          decision="halted", reason=reason, subject_id=cmd.id,
                          correlation_id=cmd.id)
    # durable first: the database latch and audit hold even if Redis is down right now
    await asyncio.to_thread(store.record_audit_event, audit)
    current = await halt_latch(redis, store, HaltState(kind="kill_switch", by=actor,
                                                      reason=reason))
    bus = Bus(redis, SOURCE)
    await bus.publish(channels.AUDIT, audit)
    # Only events appended after the command can be its confirmation.
    last = await redis.xrevrange(channels.TRADING_EVENTS, count=1)
    after = last[0][0].decode() if last else "0-0"
    await bus.publish(channels.ORDERS, cmd)
    log.critical("EMERGENCY STOP by %s: %s (command %s)", actor, reason, cmd.id)
    done = await _wait_executed(redis, cmd.id, after, wait_s)
    if done is not None:
        return EmergencyStopResult(
            halted=True, latched_at=current.ts, reason=reason, command_id=cmd.id,
            confirmed=True, cancelled_orders=done.cancelled,
            flattened=[FlattenedPosition(**p.model_dump()) for p in done.flattened],
            open_orders_left=done.open_orders_left, positions_left=done.positions_left,
            message=(
                "halted; execution cancelled "
                f"{len(done.cancelled)} orders and closed {len(done.flattened)} positions"
                + ("" if not (done.open_orders_left or done.positions_left)
                   else "; NOT flat: see open_orders_left / positions_left")
            ),
        )
    open_orders, positions = await _what_is_left(redis, store)
    return EmergencyStopResult(
        halted=True, latched_at=current.ts, reason=reason, command_id=cmd.id,
        confirmed=False, cancelled_orders=[], flattened=[], open_orders_left=open_orders,
        positions_left=positions,
        message=(
            f"halted; execution has not confirmed within {wait_s:g}s: the cancel-and-flatten "
            "command is queued on the durable 'orders' stream and runs as soon as the "
            "execution agent is up; left as last known"
        ),
    )


async def _wait_executed(
    redis: Redis, command_id: str, after: str, wait_s: float
) -> KillSwitchExecuted | None:
    deadline = time.monotonic() + wait_s
    while True:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            return None
        resp = await redis.xread({channels.TRADING_EVENTS: after}, block=min(left_ms, 500))
        for _stream, entries in resp or []:
            for entry_id, fields in entries:
                after = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                try:
                    msg = decode(fields[DATA_FIELD])
                except (ValueError, KeyError):
                    continue
                if isinstance(msg, KillSwitchExecuted) and msg.command_id == command_id:
                    return msg


async def _what_is_left(redis: Redis, store: Store) -> tuple[list[str], dict[str, float]]:
    rows = await asyncio.to_thread(store.orders)
    open_orders = [r["client_order_id"] for r in rows if r["status"] in NON_FINAL_STATUSES]
    mark = await read_portfolio_mark(redis)
    positions = {} if mark is None else {
        s: p.quantity for s, p in mark.positions.items() if p.quantity}
    return open_orders, positions


async def reset_halt(redis: Redis, store: Store, *, reason: str, actor: str) -> ResetResult:
    """Clear the halt latch (database first, with a reset record; then Redis) and audit
    who and why (:func:`backend.mesh.halt.reset`).

    The risk agent adopts the reset at its next portfolio mark (its circuit breaker
    then measures the rest of the day from that mark's equity).
    """
    prev, rec = await halt_reset(redis, store, reason=reason, actor=actor)
    await _audit(redis, store, AuditRecorded(
        source=SOURCE, actor=actor, action="halt_reset",
        decision="resumed" if prev else "noop",
        reason=reason + (f" (was: {prev.kind}: {prev.reason})" if prev else " (was not halted)")
        + f" [reset #{rec.generation}]",
    ))
    if prev is None:
        return ResetResult(was_halted=False, halted=False, message="trading was not halted")
    log.warning("halt reset by %s: %s (was %s: %s)", actor, reason, prev.kind, prev.reason)
    return ResetResult(
        was_halted=True, halted=False, previous_reason=f"{prev.kind}: {prev.reason}",
        message="halt cleared; risk adopts the reset at its next portfolio mark",
    )


async def sync_halt_latch(redis: Redis, store: Store) -> HaltState | None:
    """Keep Redis' latch in step with the database's (:func:`backend.mesh.halt.sync_latch`;
    called at start and every few seconds), auditing what it changed.  Returns the latch
    in force (``None`` = trading allowed)."""
    halt, done = await sync_latch(redis, store)
    if done == "restored" and halt is not None:
        log.critical("HALTED (restored from the database): %s", halt.reason)
        await _audit(redis, store, AuditRecorded(
            source=SOURCE, actor=SOURCE, action="halt_restored", decision="halted",
            reason=f"Redis had no halt latch; the database had {halt.kind}: {halt.reason}"))
    elif done == "reset finished":
        await _audit(redis, store, AuditRecorded(
            source=SOURCE, actor=SOURCE, action="halt_reset_finished", decision="resumed",
            reason="a latch older than the last reset was left in Redis: removed"))
    return halt
