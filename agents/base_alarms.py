"""How an agent raises the alarm: error reports, breach alerts, the halt latch, dead letters.

:class:`AgentAlarms` is a mixin of :class:`agents.base.Agent` (its methods are the
agent's); it holds what an agent does when something goes wrong with an input or with
itself: :meth:`~AgentAlarms.report_error` on ``agent:errors``, a ``breach``
:class:`~backend.messages.RiskAlertRaised` on ``risk_alerts`` when an input is stuck
(:meth:`~AgentAlarms.on_stuck`) or lost (:meth:`~AgentAlarms.on_data_loss`), the trading
halt (:meth:`~AgentAlarms.latch_halt`) and the dead letter of an input that cannot be
handled (``_dead_letter``: the record and the ack in one transaction).
"""

from __future__ import annotations

import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agents.base_errors import INFRA_ERRORS, REDIS_ERRORS
from backend import channels
from backend.bus import Bus, Delivery
from backend.mesh.halt import HaltKind, HaltState, latch
from backend.messages import AgentErrorRaised, AnyMessage, RiskAlertRaised, stable_id

__all__ = ["AgentAlarms"]


class AgentAlarms:
    """The alarm methods of :class:`agents.base.Agent` (a mixin: the attributes below
    are the agent's, set by its ``__init__`` and ``run``)."""

    agent_id: str
    #: May latch the trading halt (see :attr:`agents.base.Agent.may_latch`).
    may_latch: bool
    log: logging.Logger
    redis: Redis | None
    bus: Bus | None
    errors: int
    dead_letters: int
    last_error: str

    async def report_error(self, error: str, fatal: bool = False) -> None:
        """Count, log and publish an error on ``agent:errors`` (best effort)."""
        self.errors += 1
        self.last_error = error[:500]
        self.log.error("%s", error)
        if self.bus is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                msg = AgentErrorRaised(
                    source=self.agent_id, agent_id=self.agent_id, error=error[:2000], fatal=fatal
                )
                await self.bus.publish(channels.AGENT_ERRORS, msg)

    async def on_stuck(self, delivery: Delivery, msg: AnyMessage, why: str) -> None:
        """An input could not be handled for ``orchestrator.stuck_alert_s`` because of
        an infrastructure error: report it (``agent:errors``) and raise an alert on
        ``risk_alerts`` (best effort); an agent that may latch halts trading when the
        stuck input is an order command (execution)."""
        await self.report_error(f"stuck: {why}")
        await self._breach_alert("input_stuck", delivery, why)
        if self.may_latch and delivery.stream == channels.ORDERS:
            # an order or the kill switch cannot be carried out: nothing new may pile up
            await self.latch_halt("stuck", f"an order command is stuck: {why}")
            self.log.critical("HALTED: an order command is stuck: %s", why)

    async def on_data_loss(self, delivery: Delivery) -> None:
        """A pending input's payload is gone (:attr:`backend.bus.Delivery.lost`): what it
        said is unknown, so report it (``agent:errors``) and raise a ``data_loss`` alert on
        ``risk_alerts``; the entry is then dead-lettered (visible, acknowledged).  Agents on
        the order path that may latch (:attr:`may_latch`) halt trading as well."""
        why = f"{delivery.stream} {delivery.entry_id}: {delivery.problem}"
        self.log.critical("DATA LOSS %s", why)
        await self.report_error(f"data loss: {why}")
        await self._breach_alert("data_loss", delivery, why)
        if self.may_latch and delivery.stream in channels.ORDER_PATH_STREAMS:
            await self.latch_halt("data_loss", f"lost input on the order path: {why}")

    async def _breach_alert(self, metric: str, delivery: Delivery, why: str) -> None:
        """A ``breach`` :class:`RiskAlertRaised` about ``delivery`` on ``risk_alerts``
        (best effort: Redis may be what failed)."""
        assert self.bus is not None
        with contextlib.suppress(*REDIS_ERRORS, RedisError):
            await self.bus.publish(channels.RISK_ALERTS, RiskAlertRaised(
                id=stable_id(metric, self.agent_id, delivery.stream, delivery.entry_id),
                source=self.agent_id, metric=metric, level="breach", value=1.0,
                limit=1.0, ratio=1.0, reason=why[:500]))

    async def latch_halt(self, kind: HaltKind, reason: str) -> None:
        """Latch the trading halt (database first when this agent has a store, then Redis
        with SET NX; best effort: the orchestrator re-latches Redis from the database)."""
        halt = HaltState(kind=kind, by=self.agent_id, reason=reason[:1000])
        store = getattr(self, "store", None)
        try:
            if store is not None and self.redis is not None:
                await latch(self.redis, store, halt)
                return
        except INFRA_ERRORS:
            pass
        except REDIS_ERRORS:
            return
        with contextlib.suppress(*REDIS_ERRORS, RedisError):
            assert self.redis is not None
            await self.redis.set(channels.HALT_KEY, halt.to_json(), nx=True)

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        assert self.bus is not None and self.redis is not None
        self.dead_letters += 1
        self.log.warning("dead-letter %s %s (%d bytes): %s", delivery.stream,
                         delivery.entry_id, len(delivery.raw), reason)
        pipe = self.redis.pipeline(transaction=True)  # the record and the ack: atomic
        self.bus.stage_dead_letter(pipe, delivery.stream, delivery.raw, reason,
                                   delivery.entry_id)
        self.bus.stage_ack(pipe, delivery.stream, self.agent_id, delivery.entry_id)
        await pipe.execute()
