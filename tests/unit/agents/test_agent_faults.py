"""The agent base under infrastructure faults (issue 15), on fakeredis:

* a database error is never a reason to drop a command: retried with backoff (the agent
  shows ``degraded``), never dead-lettered, acknowledged only once handled;
* an input stuck for longer than ``orchestrator.stuck_alert_s`` raises an alert, and an
  agent that may latch (execution) halts trading, in the database and in Redis;
* a pending entry whose payload is gone is data loss: alert, halt on the order path,
  dead-lettered as data loss (not as junk).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy.exc import OperationalError

from agents.base import Agent
from backend import channels
from backend.bus import DATA_FIELD, LOST_PROBLEM, Bus
from backend.mesh.halt import HALT_STATE, read_halt
from backend.messages import (
    CancelAllOrders,
    DeadLettered,
    RiskAlertRaised,
    Side,
    SignalGenerated,
    decode,
)
from backend.persistence import Store, make_engine
from tests.support.agent_fixtures import settings_for, wire


class Flaky(Agent):
    """Fails its first ``failures`` handle() calls with a database error."""

    role = "compliance"

    def __init__(self, tmp_path: Path, failures: int, role: str = "compliance",
                 may_latch: bool = False) -> None:
        s = settings_for(tmp_path)
        s.orchestrator.stuck_alert_s = 0.0
        self.role = role
        super().__init__(s, role)
        self.may_latch = may_latch
        self.failures, self.calls, self.handled = failures, 0, []
        self.waits: list[float] = []
        self.store = Store(make_engine(s.db_url()))

    async def handle(self, delivery, msg, pipe) -> None:  # noqa: ANN001
        self.calls += 1
        if self.calls <= self.failures:
            if self.calls % 2:
                raise OperationalError("INSERT", {}, sqlite3.OperationalError("disk I/O error"))
            raise sqlite3.OperationalError("database is locked")
        self.handled.append(msg.id)

    async def wait_stop(self, seconds: float) -> bool:
        self.waits.append(seconds)  # no real sleeping in a unit test
        return False


def signal() -> SignalGenerated:
    return SignalGenerated(source="strategy:ETHBTC", symbol="ETH/BTC", side=Side.BUY,
                           confidence=0.9, entry_price=0.1, stop_loss=0.09, take_profit=0.11,
                           reason="t", strategy="sma_cross", bar_seq=1, bar_time=1)


async def alerts(redis) -> list[RiskAlertRaised]:  # noqa: ANN001
    return [decode(f[DATA_FIELD]) for _i, f in await redis.xrange(channels.RISK_ALERTS)]


async def dead_letters(redis) -> list[DeadLettered]:  # noqa: ANN001
    return [decode(f[DATA_FIELD]) for _i, f in await redis.xrange(channels.DEAD_LETTER)]


async def pending(redis, stream: str, group: str) -> int:  # noqa: ANN001
    return int((await redis.xpending(stream, group))["pending"])


def test_a_database_error_is_retried_never_dead_lettered(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = Flaky(tmp_path, failures=6)  # twice MAX_ATTEMPTS
        await wire(agent, fake_redis)
        msg = signal()
        await Bus(fake_redis, "strategy").publish(channels.SIGNALS, msg)
        (d,) = await agent.bus.read([channels.SIGNALS], agent.agent_id, block_ms=None)
        await agent.dispatch(d)
        assert agent.handled == [msg.id] and agent.calls == 7
        assert await dead_letters(fake_redis) == []
        assert await pending(fake_redis, channels.SIGNALS, agent.agent_id) == 0
        assert agent.waits == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0]  # backoff, capped
        assert agent.state.value == "running"
        # stuck for longer than stuck_alert_s (0 here): said once, as an alert
        (alert,) = await alerts(fake_redis)
        assert alert.metric == "input_stuck" and "database error" in alert.reason
        assert await read_halt(fake_redis) is None  # compliance does not halt trading
        agent.store.close()

    asyncio.run(go())


def test_a_stuck_order_command_halts_trading(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = Flaky(tmp_path, failures=3, role="execution", may_latch=True)
        await wire(agent, fake_redis)
        cmd = CancelAllOrders(source="orchestrator", reason="kill switch", flatten=True)
        await Bus(fake_redis, "risk").publish(channels.ORDERS, cmd)
        batch = await agent.bus.read(agent.inputs, agent.agent_id, block_ms=None)
        (d,) = [x for x in batch if x.stream == channels.ORDERS]
        await agent.dispatch(d)
        assert agent.handled == [cmd.id]  # carried out once the database answered
        assert await dead_letters(fake_redis) == []
        halt = await read_halt(fake_redis)
        assert halt is not None and halt.kind == "stuck" and halt.by == "execution"
        assert agent.store.get_state(HALT_STATE)["kind"] == "stuck"  # durable first
        agent.store.close()

    asyncio.run(go())


def test_a_pending_entry_whose_payload_is_gone_is_data_loss(tmp_path: Path,
                                                            fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = Flaky(tmp_path, failures=0, role="execution", may_latch=True)
        await wire(agent, fake_redis)
        cmd = CancelAllOrders(source="orchestrator", reason="kill switch", flatten=True)
        eid = await Bus(fake_redis, "risk").publish(channels.ORDERS, cmd)
        await agent.bus.read(agent.inputs, agent.agent_id, block_ms=None)  # now pending
        await fake_redis.xdel(channels.ORDERS, eid)  # the payload is gone (trim, loss)
        agent.bus.recheck_pending()  # as after a restart
        batch = await agent.bus.read(agent.inputs, agent.agent_id, block_ms=None)
        (d,) = [x for x in batch if x.stream == channels.ORDERS]
        assert d.lost and d.problem == LOST_PROBLEM
        await agent.dispatch(d)
        assert agent.handled == []
        (dl,) = await dead_letters(fake_redis)
        assert dl.channel == channels.ORDERS and "data loss" in dl.reason
        assert [a.metric for a in await alerts(fake_redis)] == ["data_loss"]
        halt = await read_halt(fake_redis)
        assert halt is not None and halt.kind == "data_loss"
        assert agent.store.get_state(HALT_STATE)["kind"] == "data_loss"
        assert await pending(fake_redis, channels.ORDERS, agent.agent_id) == 0
        agent.store.close()

    asyncio.run(go())


def test_junk_is_still_junk(tmp_path: Path, fake_redis) -> None:  # noqa: ANN001
    """An entry with the wrong fields is dead-lettered as malformed, without any alarm."""
    async def go() -> None:
        agent = Flaky(tmp_path, failures=0, role="execution", may_latch=True)
        await wire(agent, fake_redis)
        await fake_redis.xadd(channels.ORDERS, {b"junk": b"1"})
        batch = await agent.bus.read(agent.inputs, agent.agent_id, block_ms=None)
        (d,) = [x for x in batch if x.stream == channels.ORDERS]
        assert not d.lost
        await agent.dispatch(d)
        (dl,) = await dead_letters(fake_redis)
        assert "expected exactly 'data'" in dl.reason
        assert await alerts(fake_redis) == [] and await read_halt(fake_redis) is None
        agent.store.close()

    asyncio.run(go())
