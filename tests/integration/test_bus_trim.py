"""Stream trimming never drops what a consumer group has not acknowledged (issue 15), on a
real redis-server: ``XADD`` no longer caps the streams groups read, and
:func:`backend.bus.trim_consumed` cuts below the slowest group only."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from backend import channels
from backend.bus import DATA_FIELD, Bus, trim_consumed
from backend.messages import CancelAllOrders, decode


def cmd(n: int) -> CancelAllOrders:
    return CancelAllOrders(id=f"cmd-{n}", source="risk", reason=f"n={n}")


def test_xadd_does_not_cap_a_consumed_stream(redis_url: str) -> None:
    async def go() -> None:
        r = aioredis.Redis.from_url(redis_url)
        bus = Bus(r, "risk", maxlen=5)  # the old cap would have dropped all but ~5
        for n in range(300):
            await bus.publish(channels.ORDERS, cmd(n))
        assert await r.xlen(channels.ORDERS) == 300
        for n in range(300):  # a history stream nobody's group reads is still capped
            await bus.publish(channels.AUDIT, cmd(n))
        assert await r.xlen(channels.AUDIT) < 300
        await r.aclose()

    asyncio.run(go())


def test_trim_keeps_every_entry_a_group_has_not_acknowledged(redis_url: str) -> None:
    async def go() -> None:
        r = aioredis.Redis.from_url(redis_url)
        bus = Bus(r, "risk")
        await r.xgroup_create(channels.ORDERS, "slow", id="0", mkstream=True)
        await r.xgroup_create(channels.ORDERS, "fast", id="0")
        ids = [await bus.publish(channels.ORDERS, cmd(n)) for n in range(40)]
        # fast: read and acked everything; slow: read 20, acked the first 10
        got = await r.xreadgroup("fast", "c", {channels.ORDERS: ">"}, count=100)
        await r.xack(channels.ORDERS, "fast", *[e for e, _f in got[0][1]])
        got = await r.xreadgroup("slow", "c", {channels.ORDERS: ">"}, count=20)
        await r.xack(channels.ORDERS, "slow", *[e for e, _f in got[0][1][:10]])

        res = await trim_consumed(r, channels.ORDERS, keep=5)
        assert (res.before, res.after, res.held_by) == (40, 30, "slow")
        # the slow group's unacknowledged 10 come back with their payloads, then the 20
        # it never read
        again = await r.xreadgroup("slow", "c", {channels.ORDERS: "0"}, count=100)
        pending = [decode(f[DATA_FIELD]).id for _e, f in again[0][1]]
        assert pending == [f"cmd-{n}" for n in range(10, 20)]
        unread = await r.xreadgroup("slow", "c", {channels.ORDERS: ">"}, count=100)
        assert [decode(f[DATA_FIELD]).id for _e, f in unread[0][1]] == \
            [f"cmd-{n}" for n in range(20, 40)]
        await r.xack(channels.ORDERS, "slow", *ids)

        # everyone caught up: trimmed to about ``keep``
        res = await trim_consumed(r, channels.ORDERS, keep=5)
        assert res.after <= 6 and res.held_by == ""
        # a stream no group reads is left alone
        for _ in range(20):
            await r.xadd("no-group", {DATA_FIELD: b"x"})
        assert (await trim_consumed(r, "no-group", keep=5)).after == 20
        await r.aclose()

    asyncio.run(go())
