"""``tradingmesh panic``: halt, cancel and flatten with whatever still works.

The kill switch (:mod:`orchestrator.killswitch`) needs Redis and, to act at the venue,
the execution agent.  Panic needs neither:

1. **Database first**: the halt latch (``kind="kill_switch"``) and an audit record are
   written to the database before anything else, so the halt holds whatever happens next
   (the orchestrator puts a latch the database has back into Redis).
2. Redis is probed (a few seconds).  If it answers, the latch is set there too and:

   * the execution agent is running (it holds its lease): the durable kill-switch
     command is queued for it and its confirmation awaited (``path="kill_switch"``):
     two processes never trade the same account side by side;
   * else the failsafe (:func:`agents.execution_failsafe.cancel_open_orders`) takes the
     execution lease, cancels every open order -- protective stops too -- and closes the
     positions, with the venue's books in Redis kept up to date (``path="failsafe"``;
     the paper venue included).

3. Redis does not answer: a live venue is reached directly from the settings
   (:func:`agents.execution_panic.panic_at_venue`, ``path="venue"``).  The paper venue's
   book lives in Redis, so nothing can be done there (``path="none"``; the database
   latch still holds).

A closing audit record says what was done and what is left.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agents.execution_failsafe import cancel_open_orders
from agents.execution_panic import PanicReport, panic_at_venue
from backend.mesh.halt import HALT_STATE, HaltState
from backend.mesh.halt import latch as halt_latch
from backend.mesh.lease import Lease
from backend.messages import AuditRecorded, new_id
from backend.persistence import Store, make_engine
from backend.settings import Settings
from backend.venues.broker import BrokerClient
from orchestrator.killswitch import emergency_stop

__all__ = ["PanicReport", "panic"]

log = logging.getLogger("orchestrator.panic")
SOURCE = "orchestrator"


async def panic(settings: Settings, *, reason: str, actor: str = "cli",
                redis_url: str | None = None, wait_s: float = 10.0,
                scope: Literal["mesh", "account"] = "mesh", redis_timeout_s: float = 3.0,
                client: BrokerClient | None = None) -> PanicReport:
    """Halt, cancel and flatten (see the module docstring).

    Parameters
    ----------
    settings
        Mesh settings (database, venue).
    reason, actor
        Why and who (audited).
    redis_url
        The mesh's Redis (default ``settings.redis_url``).
    wait_s
        Seconds to wait for the running execution agent's confirmation.
    scope
        What a direct close covers: the mesh's part (venue - baseline) or every
        position of the mesh's symbols.
    redis_timeout_s
        How long Redis may take to answer the probe.
    client
        Broker client for the direct path (tests).

    Returns
    -------
    PanicReport
        ``flat`` when nothing of the mesh's is left open.
    """
    command_id = new_id()
    halt = HaltState(kind="kill_switch", by=actor, reason=f"panic: {reason}"[:1000])
    store = Store(make_engine(settings.db_url(), durable=True))
    try:
        await asyncio.to_thread(_latch_in_db, store, halt, AuditRecorded(
            source=SOURCE, actor=actor, action="panic", decision="halted",
            reason=reason[:1000], subject_id=command_id, correlation_id=command_id))
        log.critical("PANIC by %s: %s (command %s): halted in the database", actor, reason,
                     command_id)
        url = redis_url or settings.redis_url
        redis = Redis.from_url(url, socket_timeout=redis_timeout_s,
                               socket_connect_timeout=redis_timeout_s)
        try:
            report = await _with_redis(settings, store, redis, url, halt, reason, actor,
                                       command_id, wait_s)
        except (RedisError, OSError) as exc:
            log.warning("Redis is not reachable (%s): going to the venue directly",
                        type(exc).__name__)
            report = await _without_redis(settings, store, command_id, scope, client)
        finally:
            await redis.aclose()
        await asyncio.to_thread(store.record_audit_event, AuditRecorded(
            source=SOURCE, actor=actor, action="panic_result",
            decision="flat" if report.flat else "not_flat", subject_id=command_id,
            correlation_id=command_id, reason=_summary(report)[:1000]))
        return report
    finally:
        store.close()


def _latch_in_db(store: Store, halt: HaltState, audit: AuditRecorded) -> None:
    store.record_audit_event(audit)
    store.put_state_if_absent(HALT_STATE, halt.model_dump(mode="json"))


async def _with_redis(settings: Settings, store: Store, redis: Redis, url: str,
                      halt: HaltState, reason: str, actor: str, command_id: str,
                      wait_s: float) -> PanicReport:
    await redis.ping()
    await halt_latch(redis, store, halt)
    holder = await Lease(redis, "execution", settings.orchestrator.heartbeat_ttl_s).holder()
    if holder is not None:
        res = await emergency_stop(redis, store, reason=f"panic: {reason}", actor=actor,
                                   wait_s=wait_s)
        return PanicReport(
            venue=settings.venue.kind, path="kill_switch", command_id=res.command_id,
            latched=True, cancelled=res.cancelled_orders,
            flattened=[p.client_order_id for p in res.flattened],
            open_orders_left=res.open_orders_left, positions_left=res.positions_left,
            notes=[f"the execution agent is running ({holder}): {res.message}"],
            error="" if res.confirmed else "execution did not confirm within "
            f"{wait_s:g}s (the command stays queued)")
    rep = await cancel_open_orders(settings, f"panic: {reason}", keep_protective=False,
                                   flatten=True, redis_url=url, actor=actor)
    return PanicReport(
        venue=rep.venue, path="failsafe", command_id=command_id, latched=True,
        cancelled=rep.cancelled, flattened=rep.flattened,
        open_orders_left=rep.open_orders_left, positions_left=rep.positions_left,
        error=rep.error)


async def _without_redis(settings: Settings, store: Store, command_id: str,
                         scope: Literal["mesh", "account"],
                         client: BrokerClient | None) -> PanicReport:
    if settings.venue.kind == "paper" and client is None:
        return PanicReport(
            venue="paper", path="none", command_id=command_id, latched=True,
            notes=["the paper venue's book lives in Redis, which does not answer: nothing "
                   "to cancel or close now; the halt latch in the database holds and is put "
                   "back into Redis when it returns"])
    return await panic_at_venue(settings, store, command_id=command_id, scope=scope,
                                client=client)


def _summary(r: PanicReport) -> str:
    return (f"{r.path}: cancelled {len(r.cancelled)}, closed {len(r.flattened)}; "
            f"open orders left {r.open_orders_left or 'none'}; positions left "
            f"{r.positions_left or 'none'}; unresolved {r.unresolved or 'none'}"
            + (f"; error {r.error}" if r.error else ""))
