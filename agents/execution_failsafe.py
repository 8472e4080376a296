"""Cancel every open order at the venue when the execution agent cannot run.

``python -m agents.execution_failsafe --reason TEXT`` is started by the orchestrator after
it gave up on the execution agent (crash loop) and latched HALTED.  It runs with the
execution role's Redis credentials and environment, but shares nothing with the agent's
start-up beyond the venue adapter and the event recorder: it builds the venue, loads its
state, cancels every open order (no flattening: positions keep their stops for a human
to decide), records each cancellation in the database, publishes the ``OrderCancelled``
events and an audit record, and saves the venue state in one Redis transaction.

Idempotent: a second run finds nothing left to cancel.  The last stdout line is a JSON
:class:`FailsafeReport`.  Exit code 0 when nothing is left open, 1 when orders remain or
the venue/Redis could not be reached, 2 on bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from pydantic import BaseModel
from redis.asyncio import Redis

from agents.execution_records import record_event
from backend import channels
from backend.bus import Bus
from backend.messages import AuditRecorded, now_ns
from backend.persistence import Store, make_engine
from backend.settings import ConfigError, Settings, load_settings
from backend.venues.factory import make_venue

SOURCE = "execution-failsafe"
log = logging.getLogger("agents.execution_failsafe")


class FailsafeReport(BaseModel):
    """What the failsafe did: client order ids cancelled and those still open after."""

    venue: str
    cancelled: list[str]
    open_orders_left: list[str]
    error: str = ""


async def cancel_open_orders(settings: Settings, reason: str) -> FailsafeReport:
    """Cancel every open order at the configured venue and record it (see module doc).

    Parameters
    ----------
    settings
        Mesh settings (venue, database, Redis URL of the execution role).
    reason
        Why, carried in each ``OrderCancelled`` and the audit record.
    """
    redis = Redis.from_url(settings.redis_url, socket_timeout=30, socket_connect_timeout=5)
    store = Store(make_engine(settings.db_url()))
    venue = make_venue(settings, redis)
    try:
        await venue.load()
        now = now_ns()
        cancelled = await venue.cancel_all(reason, now)
        for ev in cancelled:
            await record_event(store, venue, ev)
        bus = Bus(redis, SOURCE, settings.stream_maxlen)
        pipe = redis.pipeline(transaction=True)
        for ev in cancelled:
            bus.stage(pipe, channels.TRADING_EVENTS, ev)
        bus.stage(pipe, channels.AUDIT, AuditRecorded(
            source=SOURCE, actor="orchestrator", action="failsafe_cancel",
            decision=f"cancelled {len(cancelled)}", reason=reason[:500],
        ))
        venue.stage(pipe)
        await pipe.execute()
        venue.commit()
        left = await venue.open_orders()
        return FailsafeReport(venue=venue.name, cancelled=[c.client_order_id for c in cancelled],
                              open_orders_left=left)
    finally:
        await venue.close()
        store.close()
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
    log.warning("cancelled %d open orders; left open: %s", len(report.cancelled),
                report.open_orders_left or "none")
    print(report.model_dump_json(), flush=True)
    return 0 if not report.open_orders_left else 1


if __name__ == "__main__":
    sys.exit(main())
