"""The orchestrator's housekeeping (issue 15), on fakeredis and SQLite: Redis losing its
data is detected and halts trading (database first), the latch comes back after a FLUSHALL
within one sync, and trimming never cuts what a lagging group has not acknowledged (it
alerts instead)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import fakeredis

from backend import channels
from backend.bus import DATA_FIELD, Bus
from backend.mesh.halt import HALT_STATE, HaltState, read_halt
from backend.messages import CancelAllOrders, RiskAlertRaised, decode
from orchestrator.supervisor import Supervisor
from tests.support.agent_fixtures import settings_for


def supervisor(tmp_path: Path, redis, **kw: object) -> Supervisor:  # noqa: ANN001
    return Supervisor(settings_for(tmp_path, **kw), [], {}, tmp_path / "logs", redis=redis)


async def alerts(redis) -> list[RiskAlertRaised]:  # noqa: ANN001
    return [decode(f[DATA_FIELD]) for _i, f in await redis.xrange(channels.RISK_ALERTS)]


def test_redis_losing_its_data_halts_trading_once(tmp_path: Path) -> None:
    async def go() -> None:
        server = fakeredis.FakeServer()
        r = fakeredis.aioredis.FakeRedis(server=server)
        sup = supervisor(tmp_path, r)
        assert await sup.check_redis_data() is False  # first sight: marker set
        assert await r.get(channels.INSTANCE_KEY) is not None
        await sup.sync_halts()
        assert await read_halt(r) is None

        await r.flushall()  # Redis restarted without its data
        await sup.sync_halts()
        halt = await read_halt(r)
        assert halt is not None and halt.kind == "data_loss"
        assert sup.store.get_state(HALT_STATE)["kind"] == "data_loss"  # durable
        assert [a.metric for a in await alerts(r)] == ["data_loss"]
        assert [x["decision"] for x in sup.store.audit(action="halt")] == ["halted"]
        await sup.sync_halts()  # said once
        assert len(await alerts(r)) == 1

        # and again: the latch the database has comes back after every loss
        await r.flushall()
        await sup.sync_halts()
        assert (await read_halt(r)).kind == "data_loss"
        sup.store.close()
        await r.aclose()

    asyncio.run(go())


def test_a_lagging_group_is_not_trimmed_but_alerted(tmp_path: Path) -> None:
    async def go() -> None:
        r = fakeredis.aioredis.FakeRedis(server=fakeredis.FakeServer())
        sup = supervisor(tmp_path, r, stream_maxlen=1000)
        await r.xgroup_create(channels.ORDERS, "execution", id="0", mkstream=True)
        bus = Bus(r, "risk")
        for n in range(2100):
            await bus.publish(channels.ORDERS, CancelAllOrders(id=f"c{n}", source="risk",
                                                               reason="r"))
        res = {t.stream: t for t in await sup.trim_streams()}
        assert res[channels.ORDERS].after == 2100  # nothing read yet: nothing trimmed
        (alert,) = await alerts(r)
        assert alert.metric == "stream_backlog" and "execution" in alert.reason
        await sup.trim_streams()
        assert len(await alerts(r)) == 1  # once per lagging group
        sup.store.close()
        await r.aclose()

    asyncio.run(go())


def test_a_breaker_latch_only_redis_had_is_made_durable(tmp_path: Path) -> None:
    async def go() -> None:
        r = fakeredis.aioredis.FakeRedis(server=fakeredis.FakeServer())
        sup = supervisor(tmp_path, r)
        await r.set(channels.HALT_KEY, HaltState(kind="circuit_breaker", by="risk",
                                                 reason="dd").to_json())
        await sup.sync_halts()
        assert sup.store.get_state(HALT_STATE)["kind"] == "circuit_breaker"
        sup.store.close()
        await r.aclose()

    asyncio.run(go())
