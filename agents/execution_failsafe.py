"""Make positions safe when the execution agent cannot run.

``python -m agents.execution_failsafe --reason TEXT`` is started by the orchestrator after
it gave up on the execution agent (crash loop) and latched HALTED.  It runs with the
execution role's Redis credentials and environment, takes the execution agent's lease
(:mod:`backend.mesh.lease`: no two processes trade for ``execution``), builds the venue, loads
its state, and:

* cancels every open order **except the protective stops** resting at the venue for the
  mesh's positions (:mod:`backend.venues.live_brackets`): those keep protecting the
  positions while nobody trades;
* with ``venue.failsafe = "flatten"`` (for a venue without resting stops, where nothing
  would protect them) also closes the mesh's positions with market orders.

Every order goes through the same journal as the agent's (database rows, sends recorded
before the call, an unknown outcome resolved, never guessed).  The events and an audit
record are published and the venue state saved in one Redis transaction.

Idempotent: a second run finds nothing left to cancel (the closes' client order ids
derive from the reason).  The last stdout line is a JSON :class:`FailsafeReport`.  Exit
code 0 when nothing unprotected is left open, 1 when orders remain or the venue/Redis
could not be reached, 2 on bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from pydantic import BaseModel
from redis.asyncio import Redis

from agents.execution_records import StoreJournal, load_venue, record_event
from backend import channels
from backend.bus import Bus
from backend.mesh.lease import Lease, LeaseLost
from backend.messages import AuditRecorded, OrderFilled, now_ns, stable_id
from backend.persistence import Store, make_engine
from backend.settings import ConfigError, Settings, load_settings
from backend.venues.base import VenueEvent
from backend.venues.factory import make_venue
from backend.venues.ledger import is_protective

SOURCE = "execution-failsafe"
log = logging.getLogger("agents.execution_failsafe")


class FailsafeReport(BaseModel):
    """What the failsafe did: client order ids cancelled, positions closed (by client
    order id), and the orders and positions (base units) left after."""

    venue: str
    cancelled: list[str]
    open_orders_left: list[str]
    flattened: list[str] = []
    positions_left: dict[str, float] = {}
    error: str = ""


async def _take_lease(lease: Lease, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while not await lease.try_acquire():
        if time.monotonic() > deadline:
            raise LeaseLost(f"another process is the live execution agent "
                            f"({await lease.holder()}): not trading beside it")
        await asyncio.sleep(0.2)


async def cancel_open_orders(settings: Settings, reason: str, *, keep_protective: bool = True,
                             flatten: bool | None = None, redis_url: str | None = None,
                             actor: str = "orchestrator") -> FailsafeReport:
    """Cancel the open orders (protective stops stay), flatten when configured, record
    it (see the module docstring).

    Parameters
    ----------
    settings
        Mesh settings (venue, database, Redis URL of the execution role).
    reason
        Why, carried in each event and the audit record.
    keep_protective
        Leave the protective stops resting (the failsafe); ``False`` cancels them too
        (``tradingmesh panic``, which closes the positions).
    flatten
        Close the mesh's positions; ``None``: as ``venue.failsafe`` says.
    redis_url
        Redis to use instead of ``settings.redis_url``.
    actor
        Who asked (audited).

    Raises
    ------
    LeaseLost
        Another execution process holds the lease (waited ``2 x heartbeat_ttl_s``).
    """
    redis = Redis.from_url(redis_url or settings.redis_url, socket_timeout=30,
                           socket_connect_timeout=5)
    store = Store(make_engine(settings.db_url(), durable=True))
    lease = Lease(redis, "execution", settings.orchestrator.heartbeat_ttl_s)
    venue = make_venue(settings, redis, journal=StoreJournal(store, SOURCE),
                       fence=lease.check)
    try:
        await _take_lease(lease, 2 * settings.orchestrator.heartbeat_ttl_s)
        await load_venue(venue, store)
        now = now_ns()
        events: list[VenueEvent] = list(
            await venue.cancel_all(reason, now, keep_protective=keep_protective))
        cancelled = [e.client_order_id for e in events]
        flattened: list[str] = []
        if flatten if flatten is not None else settings.venue.failsafe == "flatten":
            closes = await venue.flatten(now, stable_id("failsafe-flatten", reason))
            flattened = sorted({e.client_order_id for e in closes
                                if isinstance(e, OrderFilled)})
            events += closes
        for ev in events:
            await record_event(store, venue, ev)
        bus = Bus(redis, SOURCE, settings.stream_maxlen)
        pipe = redis.pipeline(transaction=True)
        for ev in events:
            bus.stage(pipe, channels.TRADING_EVENTS, ev)
        audit = AuditRecorded(
            source=SOURCE, actor=actor, action="failsafe_cancel",
            decision=f"cancelled {len(cancelled)}, closed {len(flattened)}",
            reason=reason[:500],
        )
        await asyncio.to_thread(store.record_audit_event, audit)
        bus.stage(pipe, channels.AUDIT, audit)
        venue.stage(pipe)
        await pipe.execute()
        venue.commit()
        left = [c for c in await venue.open_orders()
                if not (keep_protective and is_protective(c))]
        return FailsafeReport(venue=venue.name, cancelled=cancelled, open_orders_left=left,
                              flattened=flattened, positions_left=await venue.positions())
    finally:
        await venue.close()
        store.close()
        await lease.release()
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m agents.execution_failsafe", description=__doc__)
    p.add_argument("--reason", default="execution agent given up: failsafe cancel")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s [execution-failsafe] %(message)s")
    try:
        settings = load_settings()
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(cancel_open_orders(settings, args.reason))
    except Exception as exc:  # noqa: BLE001 - reported to the orchestrator, which audits it
        report = FailsafeReport(venue=settings.venue.kind, cancelled=[], open_orders_left=[],
                                error=f"{type(exc).__name__}: {exc}"[:500])
        log.error("failsafe cancel failed: %s", report.error)
        print(report.model_dump_json(), flush=True)
        return 1
    log.warning("cancelled %d open orders, closed %d positions; left open: %s; positions "
                "left: %s", len(report.cancelled), len(report.flattened),
                report.open_orders_left or "none", report.positions_left or "none")
    print(report.model_dump_json(), flush=True)
    return 0 if not report.open_orders_left else 1


if __name__ == "__main__":
    sys.exit(main())
