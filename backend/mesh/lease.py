"""One live process per agent id: a lease in Redis with a fencing token.

A process becomes *the* live ``<agent id>`` by creating ``agent:lease:<agent id>``
(``SET NX PX``) with a token of its own, and takes the next fencing number (``INCR`` of
``agent:lease:<agent id>:fence``, one per generation, shown in logs); it renews the lease
with every heartbeat (compare-and-``PEXPIRE`` in a ``WATCH``/``MULTI`` transaction) and
deletes it on a clean stop (compare-and-``DEL``).  No Lua: the embedded stand-in Redis
runs it too.
A second process with the same id -- an operator's ``tradingmesh agent execution``, a
restarted agent while the old one is only paused -- finds the key taken and stands by
until it is free.

:meth:`Lease.check` is called before every venue call: it costs nothing while the last
renewal is younger than the TTL minus a safety margin (measured on the monotonic clock
from *before* the renewal was sent), and asks Redis otherwise, so a process that was
paused (SIGSTOP, a long GC, a hung VM) past its lease learns it lost it before it can
send anything: :class:`LeaseLost`, and the agent stops.
"""

from __future__ import annotations

import os
import socket
import time

from redis.asyncio import Redis
from redis.exceptions import WatchError

from backend import channels
from backend.bus import as_text

__all__ = ["Lease", "LeaseLost"]

class LeaseLost(RuntimeError):
    """This process no longer holds its agent id's lease: it must stop at once."""


class Lease:
    """The lease of one agent id (see the module docstring).

    Parameters
    ----------
    redis
        The agent's Redis client.
    agent_id
        Whose lease.
    ttl_s
        Lease lifetime without renewal (seconds; the heartbeat TTL).
    margin
        Fraction of ``ttl_s`` kept as a safety margin by :meth:`check` (default 0.2).
    """

    def __init__(self, redis: Redis, agent_id: str, ttl_s: float, margin: float = 0.2) -> None:
        self.redis, self.agent_id = redis, agent_id
        self.key, self.fence_key = channels.lease_key(agent_id), channels.lease_fence_key(agent_id)
        self.ttl_ms = max(int(ttl_s * 1000), 100)
        self.margin_s = ttl_s * margin
        self.token = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        self.fence = 0
        self._valid_until = 0.0

    @property
    def held(self) -> bool:
        """True while the last renewal is fresh enough to trust without asking."""
        return self.fence > 0 and time.monotonic() < self._valid_until

    async def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this process now holds it."""
        t0 = time.monotonic()
        if not await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return False
        self.fence = int(await self.redis.incr(self.fence_key))
        self._valid_until = t0 + self.ttl_ms / 1000 - self.margin_s
        return True

    async def _if_mine(self, action: str) -> bool:
        """Run ``action`` (``"pexpire"`` or ``"delete"``) on the key only while it holds
        our token (optimistic transaction); True when it ran."""
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(self.key)
                cur = await pipe.get(self.key)
                if cur is None or as_text(cur) != self.token:
                    await pipe.unwatch()
                    return False
                pipe.multi()
                if action == "pexpire":
                    pipe.pexpire(self.key, self.ttl_ms)
                else:
                    pipe.delete(self.key)
                await pipe.execute()
                return True
            except WatchError:  # changed under us: not ours any more
                return False

    async def holder(self) -> str | None:
        """The token of whoever holds the lease (``host:pid:start``), or ``None``."""
        raw = await self.redis.get(self.key)
        return None if raw is None else as_text(raw)

    async def renew(self) -> bool:
        """Extend the lease; False when another process holds it now.  A lease that
        expired with nobody taking it (a Redis outage longer than the TTL, Redis restarted
        without its data) is taken again, with a new fencing number."""
        t0 = time.monotonic()
        ok = await self._if_mine("pexpire")
        if not ok and await self.redis.get(self.key) is None:
            return await self.try_acquire()
        self._valid_until = t0 + self.ttl_ms / 1000 - self.margin_s if ok else 0.0
        return ok

    async def check(self) -> None:
        """Raise :class:`LeaseLost` unless this process still holds the lease (asks
        Redis only when the last renewal is too old to trust)."""
        if self.held:
            return
        if not self.fence or not await self.renew():
            raise LeaseLost(f"{self.agent_id}: lease lost (another process is the live "
                            f"{self.agent_id}, or the lease expired while this one was paused)")

    async def release(self) -> None:
        """Give the lease up (clean stop); a lease that is no longer ours is left."""
        if self.fence:
            await self._if_mine("delete")
        self.fence, self._valid_until = 0, 0.0
