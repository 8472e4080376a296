"""Checks of an external Redis before the mesh trusts it with its streams and latches.

The mesh keeps commands, the halt latch and unacknowledged messages in Redis; a server
allowed to *evict* keys under memory pressure (``maxmemory-policy`` other than
``noeviction``) would drop them silently.  A private ``redis-server`` the mesh starts has
no ``maxmemory`` (nothing is evicted); an external one (``REDIS_URL``) is checked here.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, ResponseError

__all__ = ["SAFE_POLICY", "eviction_problem", "maxmemory_policy"]

#: The only eviction policy under which Redis never drops a key by itself.
SAFE_POLICY = "noeviction"


async def maxmemory_policy(redis: Redis) -> str | None:
    """The server's ``maxmemory-policy`` (``CONFIG GET``, else ``INFO memory``); ``None``
    when this user may run neither."""
    try:
        got = await redis.config_get("maxmemory-policy")
        value = got.get("maxmemory-policy") or got.get(b"maxmemory-policy")
        if value is not None:
            return value.decode() if isinstance(value, bytes) else str(value)
    except (NoPermissionError, ResponseError):
        pass
    try:
        info = await redis.info("memory")
    except (NoPermissionError, ResponseError):
        return None
    value = info.get("maxmemory_policy")
    return None if value is None else str(value)


async def eviction_problem(redis: Redis, where: str) -> str:
    """Why the Redis at ``where`` (host:port, for the message) must not be used, or ``""``
    when its eviction policy is safe."""
    policy = await maxmemory_policy(redis)
    if policy == SAFE_POLICY:
        return ""
    if policy is None:
        return (f"cannot read maxmemory-policy of the Redis at {where} (CONFIG GET and INFO "
                f"refused): the mesh needs '{SAFE_POLICY}' (an evicting server drops "
                "commands and the halt latch); allow CONFIG GET or INFO to this user")
    return (f"the Redis at {where} has maxmemory-policy '{policy}': under memory pressure "
            "it would evict the mesh's commands, unacknowledged messages and the halt "
            f"latch; set maxmemory-policy {SAFE_POLICY} (CONFIG SET maxmemory-policy "
            f"{SAFE_POLICY}, or in redis.conf)")
