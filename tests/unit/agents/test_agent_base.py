"""Agent base dispatch on fakeredis: outputs and XACK are atomic, bad input is dead-lettered."""

from __future__ import annotations

import asyncio

import orjson

from agents.base import MAX_ATTEMPTS, Agent
from backend import channels
from backend.bus import Bus
from backend.messages import AuditRecorded, Side, SignalGenerated
from backend.settings import Settings


def _signal(n: int) -> SignalGenerated:
    """A valid message for ``signals`` (the base refuses a type its stream does not carry)."""
    return SignalGenerated(source="strategy:ETHBTC", symbol="ETH/BTC", side=Side.BUY,
                           confidence=0.5, entry_price=0.1, stop_loss=0.09, take_profit=0.11,
                           reason="test", strategy="sma_cross", bar_seq=n, bar_time=n)


class EchoAgent(Agent):
    role = "compliance"

    def __init__(self, settings: Settings, fail: bool = False) -> None:
        super().__init__(settings, "compliance")
        self.fail = fail

    async def handle(self, delivery, msg, pipe) -> None:  # noqa: ANN001
        if self.fail:
            raise RuntimeError("handler bug")
        self.emit(pipe, channels.AUDIT, AuditRecorded(
            source=self.agent_id, actor="echo", action="seen", decision="ok",
            reason=msg.type, subject_id=msg.id,
        ))


async def _setup(fake_redis, fail: bool = False) -> EchoAgent:  # noqa: ANN001
    agent = EchoAgent(Settings(), fail=fail)
    agent.redis = fake_redis
    agent.bus = Bus(fake_redis, agent.agent_id)
    for s in agent.inputs:
        await agent.bus.ensure_group(s, agent.agent_id)
    return agent


async def _pending(fake_redis) -> int:  # noqa: ANN001
    info = await fake_redis.xinfo_groups(channels.SIGNALS)
    return int(info[0]["pending"])


def test_inputs_come_from_topology() -> None:
    assert EchoAgent(Settings()).inputs == [channels.SIGNALS, channels.TRADING_EVENTS]


def test_valid_message_outputs_and_acks(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await _setup(fake_redis)
        msg = _signal(1)
        await fake_redis.xadd(channels.SIGNALS, {b"data": msg.to_json()})
        for d in await agent.bus.read(agent.inputs, agent.agent_id, block_ms=10):
            await agent.dispatch(d)
        (out,) = await fake_redis.xrange(channels.AUDIT)
        assert orjson.loads(out[1][b"data"])["subject_id"] == msg.id
        assert await _pending(fake_redis) == 0
        assert agent.messages_in == 1 and agent.messages_out == 1

    asyncio.run(go())


def test_malformed_payload_goes_to_dead_letter_and_agent_continues(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await _setup(fake_redis)
        await fake_redis.xadd(channels.SIGNALS, {b"data": b'{"type": "signal_generated"}'})
        await fake_redis.xadd(channels.SIGNALS, {b"data": b"\xff\xfe not json"})
        good = _signal(2)
        await fake_redis.xadd(channels.SIGNALS, {b"data": good.to_json()})
        for d in await agent.bus.read(agent.inputs, agent.agent_id, block_ms=10):
            await agent.dispatch(d)
        dead = await fake_redis.xrange(channels.DEAD_LETTER)
        reasons = [orjson.loads(e[1][b"data"])["reason"] for e in dead]
        assert len(reasons) == 2
        assert "invalid message" in reasons[0] and "invalid JSON" in reasons[1]
        assert agent.dead_letters == 2
        assert len(await fake_redis.xrange(channels.AUDIT)) == 1  # the good one was handled
        assert await _pending(fake_redis) == 0

    asyncio.run(go())


def test_handler_failing_repeatedly_is_dead_lettered_not_lost(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await _setup(fake_redis, fail=True)
        msg = _signal(1)
        await fake_redis.xadd(channels.SIGNALS, {b"data": msg.to_json()})
        (d,) = await agent.bus.read(agent.inputs, agent.agent_id, block_ms=10)
        await agent.dispatch(d)
        assert agent.errors == MAX_ATTEMPTS
        (dead,) = await fake_redis.xrange(channels.DEAD_LETTER)
        body = orjson.loads(dead[1][b"data"])
        assert "handler failed 3 times" in body["reason"]
        assert orjson.loads(body["payload"])["id"] == msg.id  # payload kept for replay
        assert await fake_redis.xrange(channels.AUDIT) == []  # no partial output
        errors = await fake_redis.hget("stats:messages", channels.AGENT_ERRORS)
        assert int(errors) == MAX_ATTEMPTS

    asyncio.run(go())


def test_heartbeat_key_has_ttl_and_state(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await _setup(fake_redis)
        await agent._beat()
        raw = await fake_redis.get(channels.health_key("compliance"))
        assert orjson.loads(raw)["state"] == "starting"
        ttl = await fake_redis.pttl(channels.health_key("compliance"))
        assert 0 < ttl <= Settings().orchestrator.heartbeat_ttl_s * 1000

    asyncio.run(go())
