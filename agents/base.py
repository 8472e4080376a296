"""The shared ``Agent`` base class: life cycle, heartbeat, dispatch, dead letters.

An agent is one OS process with one asyncio loop and one ``redis.asyncio`` pool.
Life cycle: starting -> running -> (degraded) -> stopping -> stopped; faulted on an
unhandled error.  Every ``heartbeat_interval_s`` it writes ``agent:health:<id>`` (TTL
``heartbeat_ttl_s``) and publishes an :class:`AgentHeartbeat` on ``agent:status``.

Dispatch: the agent reads its input streams through its consumer group (group name =
agent id), decodes each entry and calls :meth:`Agent.handle` with a MULTI/EXEC pipeline;
the base adds the ``XACK`` to that pipeline and executes it, so outputs and the ack are
atomic.  Undecodable payloads go to ``dead_letter`` (and are acked); a handler that
raises is retried up to ``MAX_ATTEMPTS`` times, then the entry is dead-lettered; one that
raises :class:`RetryLater` (a dependency such as the venue is unreachable) is retried
after a pause for as long as it takes, the agent ``degraded`` meanwhile.

A database error (:data:`INFRA_ERRORS`) is never the message's fault either: the input is
kept and retried with backoff (``degraded``), and after ``orchestrator.stuck_alert_s``
the agent raises an alert (:meth:`Agent.on_stuck`).

SIGTERM/SIGINT: stop reading, finish the batch in hand, publish the final state.

The alarms (error reports, breach alerts, the halt latch, dead letters) are the mixin
:class:`agents.base_alarms.AgentAlarms`; the error families the agent rides out are
:mod:`agents.base_errors` (both re-exported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import Counter

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from agents.base_alarms import AgentAlarms
from agents.base_errors import INFRA_ERRORS, REDIS_ERRORS
from backend import channels
from backend.bus import Bus, Delivery
from backend.mesh import topology
from backend.mesh.lease import Lease
from backend.messages import (
    AgentHeartbeat,
    AgentState,
    AnyMessage,
    DecodeError,
    Message,
    decode,
    now_ns,
)
from backend.runtime import failpoints
from backend.settings import Settings

MAX_ATTEMPTS = 3


class RetryLater(Exception):
    """Raised by :meth:`Agent.handle` when an input cannot be handled *now* for a reason
    outside the message (e.g. the venue is unreachable).

    The input is not acknowledged and is handled again after ``delay_s`` seconds (the
    agent shows ``degraded`` with ``str(exc)`` as its last error meanwhile); it never
    counts as a failure of the handler, so it is never dead-lettered.
    """

    def __init__(self, reason: str, delay_s: float = 1.0) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


class Agent(AgentAlarms):
    """Base class of every agent process.

    Subclasses set ``role``, override :meth:`setup` (load state), :meth:`handle`
    (one input message) and optionally :meth:`main` (agents that produce rather
    than consume, like market_data) and :meth:`stream_priority`.

    Parameters
    ----------
    settings
        Resolved mesh settings.
    agent_id
        Unique id (``role`` or ``role:SYMBOL``); also the consumer group name.
    """

    role = "agent"
    #: May latch the trading halt (its ACL user may SET ``mesh:halt``): risk, execution.
    may_latch = False

    def __init__(self, settings: Settings, agent_id: str | None = None) -> None:
        self.settings = settings
        self.agent_id = agent_id or self.role
        self.log = logging.getLogger(f"agent.{self.agent_id}")
        self.state = AgentState.STARTING
        self.started_at = now_ns()
        self.messages_in = 0
        self.messages_out = 0
        self.errors = 0
        self.dead_letters = 0
        self.last_message_at = 0
        self.last_error = ""
        self.redis: Redis | None = None
        self.bus: Bus | None = None
        #: One live process per agent id (set by :meth:`run`; ``None`` when the agent is
        #: driven without it, as unit tests do).
        self.lease: Lease | None = None
        self.inputs: list[str] = topology.inputs_of(self.agent_id, settings)
        self._stop = asyncio.Event()
        self._attempts: Counter[str] = Counter()

    # ------------------------------------------------------------------ hooks
    async def setup(self) -> None:
        """Load durable state; called once Redis is reachable, before reading."""

    async def teardown(self) -> None:
        """Release resources (flush buffers); called on the way out."""

    async def handle(self, delivery: Delivery, msg: AnyMessage, pipe: Pipeline) -> None:
        """Process one input message, staging outputs in ``pipe`` (MULTI/EXEC)."""
        raise NotImplementedError

    async def main(self) -> None:
        """Main loop: by default consume :attr:`inputs` until stopped."""
        await self.consume_forever()

    def after_commit(self) -> None:
        """Called after the transaction of one input executed (commit in-memory state)."""

    def stream_priority(self, stream: str) -> int:
        """Lower is handled first within one batch (default: input order)."""
        return self.inputs.index(stream) if stream in self.inputs else len(self.inputs)

    # ------------------------------------------------------------------ helpers
    def emit(self, pipe: Pipeline, channel: str, msg: Message) -> None:
        """Stage ``msg`` on ``channel`` in the current transaction."""
        assert self.bus is not None
        self.bus.stage(pipe, channel, msg)
        self.messages_out += 1

    async def load_state(self) -> bytes | None:
        """The agent's durable working state (JSON bytes) or ``None``."""
        assert self.redis is not None
        raw = await self.redis.get(channels.state_key(self.agent_id))
        return raw.encode() if isinstance(raw, str) else raw

    def stage_state(self, pipe: Pipeline, blob: bytes | str) -> None:
        """Save the agent's working state in the current transaction."""
        pipe.set(channels.state_key(self.agent_id), blob)

    def _seen_keys(self) -> tuple[str, str]:
        day = int(time.time() // 86_400)
        return (channels.seen_key(self.agent_id, day),
                channels.seen_key(self.agent_id, day - 1))

    async def already_handled(self, message_id: str) -> bool:
        """True if a message with this id was handled before (idempotent consumer)."""
        assert self.redis is not None
        today, yesterday = self._seen_keys()
        pipe = self.redis.pipeline(transaction=False)
        pipe.sismember(today, message_id)
        pipe.sismember(yesterday, message_id)
        return any(await pipe.execute())

    def stage_handled(self, pipe: Pipeline, message_id: str) -> None:
        """Mark ``message_id`` handled in the current transaction (kept two days)."""
        today, _ = self._seen_keys()
        pipe.sadd(today, message_id)
        pipe.expire(today, 3 * 86_400)

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Ask the agent to stop after the batch in hand."""
        self._stop.set()

    async def wait_stop(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a stop request; True if one came."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout)
            return True
        except TimeoutError:
            return False

    # ------------------------------------------------------------------ life cycle
    async def run(self) -> int:
        """Run until stopped; returns the process exit code (0 clean, 1 faulted)."""
        failpoints.crash_if_armed(self.agent_id, "start")  # fault drills: crash at start
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self.request_stop)
        self.redis = Redis.from_url(
            self.settings.redis_url, socket_timeout=30, socket_connect_timeout=5,
            health_check_interval=15,
        )
        self.bus = Bus(self.redis, self.agent_id, self.settings.stream_maxlen)
        lease = self.lease = Lease(self.redis, self.agent_id,
                                   self.settings.orchestrator.heartbeat_ttl_s)
        heartbeat: asyncio.Task | None = None
        code = 0
        try:
            await self._connect()
            await self._acquire_lease()
            heartbeat = asyncio.create_task(self._heartbeat_loop())
            for stream in self.inputs:
                await self.bus.ensure_group(stream, self.agent_id)
            await self.setup()
            self.state = AgentState.RUNNING
            await self._beat()
            await self.main()
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - last-resort: report, mark faulted
            self.state = AgentState.FAULTED
            await self.report_error(f"fatal: {type(exc).__name__}: {exc}", fatal=True)
            self.log.exception("agent faulted")
            code = 1
        finally:
            if self.state is not AgentState.FAULTED:
                self.state = AgentState.STOPPING
            if lease.fence:  # a standby process never owned the heartbeat key
                with contextlib.suppress(Exception):
                    await self._beat()
            with contextlib.suppress(Exception):
                await self.teardown()
            if self.state is not AgentState.FAULTED:
                self.state = AgentState.STOPPED
            if heartbeat is not None:
                # The flag ends the loop even if the cancel lands inside a Redis call that
                # swallows it (redis-py can); the cancel cuts a wait short.
                self._beating = False
                heartbeat.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(heartbeat, 5)
            if lease.fence:
                with contextlib.suppress(Exception):
                    await self._beat()
                with contextlib.suppress(Exception):
                    await lease.release()
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        return code

    async def _acquire_lease(self) -> None:
        """Become the live ``agent_id`` (:mod:`backend.mesh.lease`), standing by while
        another process is; raises ``CancelledError`` if asked to stop meanwhile."""
        assert self.lease is not None
        waited = False
        while not self.stopping:
            try:
                if await self.lease.try_acquire():
                    if waited:
                        self.log.warning("lease free: taking over as the live %s",
                                         self.agent_id)
                    return
                holder = await self.lease.holder()
            except REDIS_ERRORS as exc:
                holder = f"unknown (redis: {exc})"
            if not waited:
                self.log.warning(
                    "standing by: another process is the live %s (lease held by %s); "
                    "taking over when it stops", self.agent_id, holder)
                waited = True
            await self.wait_stop(max(self.lease.ttl_ms / 4000, 0.05))
        raise asyncio.CancelledError

    async def _connect(self) -> None:
        delay = 0.1
        while not self.stopping:
            try:
                await self.redis.ping()  # type: ignore[union-attr]
                return
            except REDIS_ERRORS as exc:
                self.log.warning("redis not reachable (%s); retrying in %.1fs", exc, delay)
                await self.wait_stop(delay)
                delay = min(delay * 2, 5.0)
        raise asyncio.CancelledError

    def heartbeat(self) -> AgentHeartbeat:
        """The agent's current health record."""
        return AgentHeartbeat(
            source=self.agent_id,
            agent_id=self.agent_id,
            role=self.role,
            state=self.state,
            pid=os.getpid(),
            started_at=self.started_at,
            messages_in=self.messages_in,
            messages_out=self.messages_out,
            errors=self.errors,
            dead_letters=self.dead_letters,
            last_message_at=self.last_message_at,
            last_error=self.last_error,
        )

    async def _beat(self) -> None:
        assert self.redis is not None and self.bus is not None
        hb = self.heartbeat()
        ttl_ms = int(self.settings.orchestrator.heartbeat_ttl_s * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(channels.health_key(self.agent_id), hb.to_json(), px=ttl_ms)
        pipe.publish(channels.AGENT_STATUS, hb.to_json())
        pipe.hincrby(channels.STATS_KEY, channels.AGENT_STATUS, 1)
        await pipe.execute()

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.orchestrator.heartbeat_interval_s
        assert self.lease is not None
        self._beating = True
        while self._beating:
            try:
                if not await self.lease.renew():
                    self._lease_lost()
                    return
                await self._beat()
            except REDIS_ERRORS:
                pass
            if self._beating:
                await asyncio.sleep(interval)

    def _lease_lost(self) -> None:
        """Another process became the live agent: stop at once, publish nothing more."""
        self.log.critical("lease lost: another process is the live %s; stopping",
                          self.agent_id)
        if self.lease is not None:
            self.lease.fence = 0
        self.state = AgentState.FAULTED
        self.last_error = "lease lost: another process is the live agent"
        self.request_stop()

    # ------------------------------------------------------------------ consuming
    async def consume_forever(self) -> None:
        """Read and dispatch input batches until stopped, riding out Redis outages."""
        assert self.bus is not None
        delay = 0.1
        while not self.stopping:
            try:
                batch = await self.bus.read(self.inputs, self.agent_id)
                if self.state is AgentState.DEGRADED:
                    self.state = AgentState.RUNNING
                    self.log.info("redis back; resuming")
                delay = 0.1
            except REDIS_ERRORS as exc:
                self.state = AgentState.DEGRADED
                self.bus.recheck_pending()  # a lost reply may have left entries pending
                self.log.warning("redis read failed (%s); retrying in %.1fs", exc, delay)
                await self.wait_stop(delay)
                delay = min(delay * 2, 5.0)
                continue
            batch.sort(key=lambda d: self.stream_priority(d.stream))
            for delivery in batch:
                await self.dispatch(delivery)

    async def dispatch(self, delivery: Delivery) -> None:
        """Decode, handle and acknowledge one delivery (dead-letter on bad input).

        Raises :class:`~backend.mesh.lease.LeaseLost` when another process became the live
        agent (nothing is handled then)."""
        assert self.bus is not None and self.redis is not None
        if self.lease is not None:
            await self.lease.check()
        self.messages_in += 1
        self.last_message_at = now_ns()
        if delivery.lost:
            await self.on_data_loss(delivery)
            await self._dead_letter(delivery, delivery.problem)
            return
        if delivery.problem:
            await self._dead_letter(delivery, delivery.problem)
            return
        try:
            msg = decode(delivery.raw, delivery.stream)
        except DecodeError as exc:
            await self._dead_letter(delivery, str(exc))
            return
        retried, stuck_since, delay = False, 0.0, 0.25
        while True:
            try:
                pipe = self.redis.pipeline(transaction=True)
                await self.handle(delivery, msg, pipe)
                self.bus.stage_ack(pipe, delivery.stream, self.agent_id, delivery.entry_id)
                failpoints.hit(self.agent_id, "before_ack", delivery.stream)
                await pipe.execute()
                self.after_commit()
                self._attempts.pop(delivery.entry_id, None)
                if retried:
                    self.state = AgentState.RUNNING
                return
            except RetryLater as exc:
                self.state, self.last_error, retried = AgentState.DEGRADED, str(exc)[:500], True
                self.log.warning("%s %s: %s; retrying in %.1fs", delivery.stream,
                                 delivery.entry_id, exc, exc.delay_s)
                if await self.wait_stop(exc.delay_s):
                    return  # stays pending; redelivered after restart
            except REDIS_ERRORS as exc:
                # Not the message's fault: wait for Redis and try the same message again.
                self.state = AgentState.DEGRADED
                self.log.warning("redis error while handling %s: %s", delivery.entry_id, exc)
                if await self.wait_stop(0.5):
                    return  # stays pending; redelivered after restart
            except INFRA_ERRORS as exc:
                # The database failed, not the message: keep it, retry with backoff, never
                # dead-letter it; say so when it lasts.
                retried = True
                stuck_since = stuck_since or time.monotonic()
                why = (f"database error while handling {delivery.stream} {delivery.entry_id} "
                       f"({msg.type}): {type(exc).__name__}: {str(exc)[:200]}; input kept, "
                       "retrying")
                self.state, self.last_error = AgentState.DEGRADED, why[:500]
                self.log.warning("%s", why)
                if stuck_since > 0 and time.monotonic() - stuck_since > \
                        self.settings.orchestrator.stuck_alert_s:
                    stuck_since = -1.0  # said once per input
                    await self.on_stuck(delivery, msg, why)
                if await self.wait_stop(delay):
                    return  # stays pending; redelivered after restart
                delay = min(delay * 2, 5.0)
            except Exception as exc:  # noqa: BLE001 - handler bug or bad content
                self._attempts[delivery.entry_id] += 1
                n = self._attempts[delivery.entry_id]
                await self.report_error(
                    f"handling {delivery.stream} {delivery.entry_id} failed "
                    f"(attempt {n}/{MAX_ATTEMPTS}): {type(exc).__name__}: {exc}"
                )
                if n >= MAX_ATTEMPTS:
                    self._attempts.pop(delivery.entry_id, None)
                    await self._dead_letter(
                        delivery, f"handler failed {n} times: {type(exc).__name__}: {exc}"
                    )
                    return
