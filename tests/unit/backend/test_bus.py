"""The bus on fakeredis: publish + stream, groups, pending-first reads, caught-up check."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from backend import channels
from backend.bus import STATS_KEY, Bus, pipeline_caught_up
from backend.messages import AgentHeartbeat, AgentState, ReplayFinished, decode


def hb() -> AgentHeartbeat:
    return AgentHeartbeat(source="a", agent_id="a", role="risk", state=AgentState.RUNNING,
                          pid=1, started_at=1)


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def test_order_path_channels_are_streams_and_published(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        bus = Bus(fake_redis, "t")
        ps = fake_redis.pubsub()
        await ps.subscribe(channels.ORDERS)
        await ps.get_message(timeout=0.1)  # subscribe confirmation
        msg = ReplayFinished(source="t", bars=1, last_seq=1)
        await bus.publish(channels.ORDERS, msg)
        got = await ps.get_message(timeout=1.0)
        assert got is not None and decode(got["data"]) == msg
        entries = await fake_redis.xrange(channels.ORDERS)
        assert len(entries) == 1 and decode(entries[0][1][b"data"]) == msg
        assert int((await fake_redis.hgetall(STATS_KEY))[b"orders"]) == 1
        await ps.aclose()

    run(go())


def test_non_stream_channel_is_not_a_stream(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        await Bus(fake_redis, "t").publish(channels.AGENT_STATUS, hb())
        assert not await fake_redis.exists(channels.AGENT_STATUS)

    run(go())


def test_unacked_entries_are_redelivered_first(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        bus = Bus(fake_redis, "consumer")
        await bus.ensure_group(channels.SIGNALS, "g")
        await bus.ensure_group(channels.SIGNALS, "g")  # idempotent
        for i in range(3):
            await bus.publish(channels.SIGNALS, ReplayFinished(source="t", bars=i, last_seq=i))
        first = await bus.read([channels.SIGNALS], "g", count=2, block_ms=10)
        assert len(first) == 2
        await fake_redis.xack(channels.SIGNALS, "g", first[0].entry_id)
        # a "restarted" consumer of the same name sees its unacked entry again first
        again = await Bus(fake_redis, "consumer").read([channels.SIGNALS], "g", block_ms=10)
        assert [d.entry_id for d in again] == [first[1].entry_id]

    run(go())


def test_pipeline_caught_up_tracks_pending_and_unread(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        bus = Bus(fake_redis, "c")
        groups = {channels.MARKET_DATA: ["g1", "g2"]}
        assert not await pipeline_caught_up(fake_redis, groups)  # no stream yet
        await bus.ensure_group(channels.MARKET_DATA, "g1")
        await bus.ensure_group(channels.MARKET_DATA, "g2")
        assert await pipeline_caught_up(fake_redis, groups)
        await bus.publish(channels.MARKET_DATA, ReplayFinished(source="t", bars=1, last_seq=1))
        assert not await pipeline_caught_up(fake_redis, groups)
        for g in ("g1", "g2"):
            (d,) = await bus.read([channels.MARKET_DATA], g, block_ms=10)
            assert not await pipeline_caught_up(fake_redis, groups)  # read but not acked
            await fake_redis.xack(channels.MARKET_DATA, g, d.entry_id)
        assert await pipeline_caught_up(fake_redis, groups)
        assert not await pipeline_caught_up(fake_redis, {channels.MARKET_DATA: ["missing"]})

    run(go())


def test_pipeline_caught_up_spans_streams_and_skips_parked_agents(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        bus = Bus(fake_redis, "c")
        groups = {channels.MARKET_DATA: ["g1"], channels.SIGNALS: ["compliance"]}
        for stream, names in groups.items():
            for g in names:
                await bus.ensure_group(stream, g)
        assert await pipeline_caught_up(fake_redis, groups)
        await bus.publish(channels.SIGNALS, ReplayFinished(source="t", bars=1, last_seq=1))
        assert not await pipeline_caught_up(fake_redis, groups)  # the second stream lags
        await fake_redis.sadd(channels.PARKED_AGENTS_KEY, "compliance")
        assert await pipeline_caught_up(fake_redis, groups)  # a parked agent holds nothing
        await fake_redis.script_flush()  # the server lost its script cache: loaded again
        assert await pipeline_caught_up(fake_redis, groups)
        await fake_redis.srem(channels.PARKED_AGENTS_KEY, "compliance")
        assert not await pipeline_caught_up(fake_redis, groups)

    run(go())


def test_dead_letter_keeps_payload_and_reason(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        bus = Bus(fake_redis, "risk")
        await bus.dead_letter(channels.ORDERS, b'{"oops"', "invalid JSON: x")
        (entry,) = await fake_redis.xrange(channels.DEAD_LETTER)
        body = orjson.loads(entry[1][b"data"])
        assert body["reason"] == "invalid JSON: x"
        assert body["payload"] == '{"oops"'
        assert body["channel"] == channels.ORDERS and body["agent_id"] == "risk"

    run(go())


@pytest.mark.parametrize("stream", channels.ORDER_PATH_STREAMS)
def test_every_order_path_channel_is_a_stream(stream: str) -> None:
    assert stream in channels.STREAMS


def test_entries_delivered_with_a_lost_reply_are_read_again(fake_redis) -> None:  # noqa: ANN001
    """A read whose reply was lost (Redis restarted) leaves entries pending for this
    consumer; ``>`` reads never return them, ``recheck_pending`` makes the next read do."""
    async def go() -> None:
        bus = Bus(fake_redis, "c")
        await bus.ensure_group(channels.ORDERS, "g")
        assert await bus.read([channels.ORDERS], "g", block_ms=1) == []  # pending: none
        await bus.publish(channels.ORDERS, ReplayFinished(source="t", bars=1, last_seq=1))
        # delivered to consumer "c", reply lost on the way back
        await fake_redis.xreadgroup("g", "c", {channels.ORDERS: ">"})
        assert await bus.read([channels.ORDERS], "g", block_ms=1) == []  # stuck pending
        bus.recheck_pending()
        (d,) = await bus.read([channels.ORDERS], "g", block_ms=1)
        assert decode(d.raw).type == "replay_finished"

    run(go())
