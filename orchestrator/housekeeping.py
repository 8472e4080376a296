"""The supervisor's housekeeping of the mesh: the halt latch, stream trimming, Redis data
loss, keeping Redis' halts in step with the database.

:class:`MeshHousekeeping` is the base of :class:`orchestrator.supervisor.Supervisor`: the
chores the orchestrator runs every few seconds besides watching the agent processes
(:func:`orchestrator.node.supervise` calls :meth:`~MeshHousekeeping.sync_halts` every 2 s and
:meth:`~MeshHousekeeping.trim_streams` every 10 s), and the latch the supervisor sets
when it gives up on the execution agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from backend import channels
from backend.bus import Bus, TrimResult, trim_consumed
from backend.mesh.halt import HaltKind, HaltState, latch
from backend.messages import AuditRecorded, RiskAlertRaised, new_id
from backend.persistence import Store, make_engine
from backend.settings import Settings
from orchestrator.killswitch import sync_halt_latch
from orchestrator.symbol_halts import restore_symbol_halts

__all__ = ["MeshHousekeeping"]

log = logging.getLogger("orchestrator")


class MeshHousekeeping:
    """The mesh-wide chores of one orchestrator: database, halt latch, streams, Redis data.

    Parameters
    ----------
    settings
        Resolved settings (``stream_maxlen``, the database URL).
    redis
        Client for the streams, the halt latch and the instance marker.
    """

    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self._store: Store | None = None
        self._backlogged: set[tuple[str, str]] = set()
        self._instance: bytes | None = None  # the Redis data marker seen last

    @property
    def store(self) -> Store:
        """The mesh's database (opened on first use)."""
        if self._store is None:
            self._store = Store(make_engine(self.settings.db_url()))
        return self._store

    async def latch_halt(self, reason: str, kind: HaltKind = "supervisor") -> None:
        """Latch HALTED -- the database first, then Redis -- and audit it (the Redis part
        is best effort: the orchestrator's halt sync puts it back once Redis answers)."""
        halt = HaltState(kind=kind, by="orchestrator", reason=reason)
        audit = AuditRecorded(source="orchestrator", actor="orchestrator", action="halt",
                              decision="halted", reason=reason)
        try:
            await asyncio.to_thread(self.store.record_audit_event, audit)
            await latch(self.redis, self.store, halt)
            await Bus(self.redis, "orchestrator").publish(channels.AUDIT, audit)
        except Exception as exc:  # noqa: BLE001 - a latch must never kill the supervisor
            log.error("halt latch partly written (%s): %s", type(exc).__name__, exc)
        log.critical("HALTED: %s", reason)

    async def trim_streams(self) -> list[TrimResult]:
        """Trim every stream consumer groups read to about ``stream_maxlen`` entries, never
        below what every group acknowledged (:func:`backend.bus.trim_consumed`); a group
        that holds more than twice that is behind: alert (``stream_backlog``, once per
        group until it catches up).  Best effort."""
        keep = self.settings.stream_maxlen
        out = []
        for stream in (*channels.ORDER_PATH_STREAMS, *channels.CONTROL_STREAMS):
            try:
                res = await trim_consumed(self.redis, stream, keep)
            except (RedisError, OSError) as exc:
                log.debug("trim of %s skipped: %s", stream, exc)
                continue
            out.append(res)
            key = (stream, res.held_by)
            if res.held_by and res.after > 2 * keep and key not in self._backlogged:
                self._backlogged.add(key)
                why = (f"{stream}: group {res.held_by} is {res.after} entries behind "
                       f"(cap {keep}); nothing it has not acknowledged is trimmed")
                log.warning("%s", why)
                with contextlib.suppress(RedisError, OSError):
                    await Bus(self.redis, "orchestrator").publish(
                        channels.RISK_ALERTS, RiskAlertRaised(
                            source="orchestrator", metric="stream_backlog", level="warning",
                            value=float(res.after), limit=float(keep),
                            ratio=res.after / keep, reason=why))
            elif res.after <= keep:
                self._backlogged = {k for k in self._backlogged if k[0] != stream}
        return out

    async def check_redis_data(self) -> bool:
        """Detect Redis losing its data while the mesh runs: the marker key
        (``mesh:instance``, set at start) is gone.  Then the streams, the consumer
        groups' pending entries and the venue books in Redis may be gone too: latch the
        halt (database first, kind ``data_loss``), audit and alert once, and set a new
        marker.  Returns True when a loss was found."""
        token = await self.redis.get(channels.INSTANCE_KEY)
        if token is not None:
            self._instance = token
            return False
        lost = self._instance is not None
        self._instance = new_id().encode()
        await self.redis.set(channels.INSTANCE_KEY, self._instance, nx=True)
        if lost:
            why = ("Redis lost its data (the instance marker is gone: restarted without "
                   "its AOF, flushed or evicted): streams, unacknowledged messages and the "
                   "venue books kept there may be gone; check the books, then reset")
            await self.latch_halt(why, kind="data_loss")
            with contextlib.suppress(RedisError, OSError):
                await Bus(self.redis, "orchestrator").publish(
                    channels.RISK_ALERTS, RiskAlertRaised(
                        source="orchestrator", metric="data_loss", level="breach",
                        value=1.0, limit=0.0, ratio=1.0, reason=why[:500]))
        return lost

    async def sync_halts(self) -> None:
        """Keep Redis' halt latch and symbol halts in step with the database, after
        checking Redis still has its data (best effort; called every few seconds)."""
        try:
            await self.check_redis_data()
            await sync_halt_latch(self.redis, self.store)
            await restore_symbol_halts(self.redis, self.store)
        except (RedisError, OSError, SQLAlchemyError) as exc:
            log.debug("halt sync skipped: %s", exc)
