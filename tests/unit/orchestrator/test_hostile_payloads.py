"""Hostile payloads against ``decode`` and the agent dispatch path (fakeredis).

Property: every input either decodes to a type its channel carries or is dead-lettered
with a reason, acknowledged, and never raises out of dispatch.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter

import fakeredis
import fakeredis.aioredis
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.base import Agent
from backend import channels
from backend.bus import DATA_FIELD, DEAD_LETTER_PREFIX, Bus
from backend.mesh.tail import summarize
from backend.messages import (
    CHANNEL_TYPES,
    MAX_PAYLOAD_BYTES,
    DeadLettered,
    DecodeError,
    Side,
    SignalGenerated,
    decode,
)
from backend.settings import Settings
from orchestrator.drills.payloads import (
    KINDS,
    _template,
    hostile_payloads,
    publish_hostile,
)
from orchestrator.drills.payloads_check import check_hostile

CONSUMED = sorted(CHANNEL_TYPES)
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
#: Values an attacker might put in a field, including ones JSON cannot carry through orjson.
field_values = json_values | st.sampled_from(
    [2**63, 2**64 - 1, 10**30, -(2**63) - 1, "NaN", "1.5", "", "x" * 600, True, -1, -1.5])


class Recorder(Agent):
    """An agent that records what reaches its handler and outputs nothing."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(Settings(symbols=["ETH/BTC"]), agent_id)
        self.handled: list[tuple[str, object]] = []

    async def handle(self, delivery, msg, pipe) -> None:  # noqa: ANN001
        self.handled.append((delivery.stream, msg))


async def _agent(redis, agent_id: str) -> Recorder:  # noqa: ANN001
    agent = Recorder(agent_id)
    agent.redis, agent.bus = redis, Bus(redis, agent_id)
    for s in agent.inputs:
        await agent.bus.ensure_group(s, agent_id)
    return agent


async def _drain(agent: Recorder) -> None:
    while batch := await agent.bus.read(agent.inputs, agent.agent_id, block_ms=None):  # type: ignore[arg-type]
        for d in batch:
            await agent.dispatch(d)


async def _dead(redis) -> list[DeadLettered]:  # noqa: ANN001
    out = []
    for _eid, fields in await redis.xrange(channels.DEAD_LETTER):
        msg = decode(fields[DATA_FIELD])
        assert isinstance(msg, DeadLettered)
        out.append(msg)
    return out


async def _pending(redis, stream: str, group: str) -> int:  # noqa: ANN001
    return int(next(g["pending"] for g in await redis.xinfo_groups(stream)
                    if g["name"].decode() == group))


def _mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real message for a consumed stream with one field changed, dropped or added."""
    channel = draw(st.sampled_from(CONSUMED))
    d = orjson.loads(_template(channel, random.Random(draw(st.integers(0, 99))), "m").to_json())
    action = draw(st.sampled_from(["set", "drop", "add"]))
    key = draw(st.sampled_from(sorted(d)))
    if action == "set":
        d[key] = draw(field_values)
    elif action == "drop":
        d.pop(key)
    else:
        d[draw(st.text(min_size=1, max_size=8))] = draw(field_values)
    return channel, json.dumps(d).encode()  # stdlib json: writes ints of any size


mutated_messages = st.composite(_mutated)()


# ------------------------------------------------------------------ decode
def _decodes_right_or_refuses(raw: bytes, channel: str | None) -> None:
    try:
        msg = decode(raw, channel)
    except DecodeError as exc:
        assert str(exc)  # a reason
        return
    if channel in CHANNEL_TYPES:
        assert msg.type in CHANNEL_TYPES[channel]
    assert decode(msg.to_json(), channel) == msg  # what passed is a clean message


@FAST
@given(raw=st.binary(max_size=300), channel=st.sampled_from([None, *channels.ALL_CHANNELS]))
def test_decode_of_any_bytes_decodes_or_gives_a_reason(raw: bytes, channel: str | None) -> None:
    _decodes_right_or_refuses(raw, channel)


@FAST
@given(value=json_values, channel=st.sampled_from(CONSUMED))
def test_decode_of_any_json_decodes_or_gives_a_reason(value: object, channel: str) -> None:
    _decodes_right_or_refuses(json.dumps(value).encode(), channel)


@FAST
@given(case=mutated_messages)
def test_decode_of_mutated_real_messages(case: tuple[str, bytes]) -> None:
    channel, raw = case
    _decodes_right_or_refuses(raw, channel)


@pytest.mark.parametrize("field,value,why", [
    ("confidence", "0.9", "valid number"),          # no string -> float coercion
    ("bar_seq", True, "valid integer"),             # no bool -> int
    ("bar_seq", 2**63, "64-bit"),                   # does not fit SQLite INTEGER
    ("bar_seq", 10**30, "64-bit"),                  # orjson reads it as a float, pydantic not
    ("entry_price", -0.1, "greater than 0"),
    ("hostile", "x", "Extra inputs"),
])
def test_wrongly_typed_fields_are_refused(field: str, value: object, why: str) -> None:
    d = orjson.loads(_signal().to_json())
    d[field] = "__v__"
    raw = json.dumps(d).replace('"__v__"', json.dumps(value)).encode()
    with pytest.raises(DecodeError, match=why):
        decode(raw, channels.SIGNALS)


@pytest.mark.parametrize("drop", ["id", "ts"])
def test_envelope_must_be_on_the_wire_also_nested(drop: str) -> None:
    d = orjson.loads(_signal().to_json())
    d.pop(drop)
    with pytest.raises(DecodeError, match=f"{drop}: field required on the wire"):
        decode(orjson.dumps(d))
    outer = orjson.loads(_template(channels.SIGNALS_APPROVED, random.Random(1), "m").to_json())
    outer["signal"].pop(drop)
    with pytest.raises(DecodeError, match=f"signal.{drop}: field required"):
        decode(orjson.dumps(outer), channels.SIGNALS_APPROVED)


def test_wrong_channel_is_refused_and_the_right_one_accepted() -> None:
    raw = _signal().to_json()
    assert decode(raw, channels.SIGNALS).type == "signal_generated"
    with pytest.raises(DecodeError, match="wrong channel: 'signal_generated' is not carried "
                                          "on 'orders'"):
        decode(raw, channels.ORDERS)
    assert decode(raw).type == "signal_generated"  # no channel given: no channel check


def _signal(n: int = 1) -> SignalGenerated:
    return SignalGenerated(source="strategy:ETHBTC", symbol="ETH/BTC", side=Side.BUY,
                           confidence=0.9, entry_price=0.1, stop_loss=0.09, take_profit=0.11,
                           reason="t", strategy="sma_cross", bar_seq=n, bar_time=n)


# ------------------------------------------------------------------ dispatch
@FAST
@given(raw=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                     mutated_messages.map(lambda c: c[1])),
       field=st.sampled_from([DATA_FIELD, DATA_FIELD, b"foo", b"\xff\xfe"]),
       extra=st.booleans())
def test_dispatch_never_raises_and_dead_letters_with_a_reason(
        raw: bytes, field: bytes, extra: bool) -> None:
    async def go() -> None:
        redis = fakeredis.aioredis.FakeRedis(server=fakeredis.FakeServer())
        agent = await _agent(redis, "execution")  # reads market_data and orders
        fields = {field: raw, **({b"x": b"1"} if extra else {})}
        eid = (await redis.xadd(channels.ORDERS, fields)).decode()
        await _drain(agent)
        dead = await _dead(redis)
        if agent.handled:
            ((stream, msg),) = agent.handled
            assert stream == channels.ORDERS and msg.type in CHANNEL_TYPES[channels.ORDERS]
            assert not dead and fields == {DATA_FIELD: raw}
        else:
            (rec,) = dead
            assert rec.reason and rec.entry_id == eid and rec.channel == channels.ORDERS
            assert rec.agent_id == "execution" and rec.size == len(fields.get(DATA_FIELD, b""))
        assert await _pending(redis, channels.ORDERS, "execution") == 0
        await redis.aclose()

    asyncio.run(go())


def test_oversized_payload_dead_letter_keeps_a_bounded_prefix_and_the_size(
        fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await _agent(fake_redis, "compliance")
        raw = b'{"id": "big", "pad": "' + b"x" * (3 * 1024 * 1024) + b'"}'
        await fake_redis.xadd(channels.SIGNALS, {DATA_FIELD: raw})
        await _drain(agent)
        (rec,) = await _dead(fake_redis)
        assert f"payload of {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}" in rec.reason
        assert rec.size == len(raw) and len(rec.payload) == DEAD_LETTER_PREFIX
        assert rec.payload.startswith('{"id": "big"')
        (entry,) = await fake_redis.xrange(channels.DEAD_LETTER)
        assert len(entry[1][DATA_FIELD]) < 2 * DEAD_LETTER_PREFIX  # not a 3 MB record
        assert agent.handled == []

    asyncio.run(go())


def test_entry_without_data_field_is_dead_lettered_not_a_crash(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await _agent(fake_redis, "compliance")
        await fake_redis.xadd(channels.SIGNALS, {b"foo": _signal().to_json()})
        await fake_redis.xadd(channels.SIGNALS, {b"\xff": b"1"})
        await fake_redis.xadd(channels.SIGNALS, {DATA_FIELD: _signal(2).to_json()})
        await _drain(agent)
        reasons = [r.reason for r in await _dead(fake_redis)]
        assert reasons == ["stream entry fields 'foo': expected exactly 'data'",
                           "stream entry fields '\ufffd': expected exactly 'data'"]
        assert [m.bar_seq for _s, m in agent.handled] == [2]  # the good one still handled
        assert await _pending(fake_redis, channels.SIGNALS, "compliance") == 0

    asyncio.run(go())


# ------------------------------------------------------------------ the drill's generator
def test_generator_is_seeded_and_covers_every_kind_and_channel() -> None:
    a = hostile_payloads(3, len(KINDS), oversize_bytes=(70_000, 80_000))
    b = hostile_payloads(3, len(KINDS), oversize_bytes=(70_000, 80_000))
    assert a == b and a != hostile_payloads(4, len(KINDS), oversize_bytes=(70_000, 80_000))
    assert {p.kind for p in a} == set(KINDS)
    assert Counter(p.channel for p in a) == dict.fromkeys(channels.ALL_CHANNELS, len(KINDS))
    assert sum(p.kind == "oversized" for p in a) == 3
    assert all(p.kind != "no_data_field" for p in a if p.channel not in channels.STREAMS)
    assert not any(b'"cancel_all_orders"' in p.data for p in a)  # never a kill switch
    for p in a:
        if p.channel in CHANNEL_TYPES and p.kind != "no_data_field":
            with pytest.raises(DecodeError):
                decode(p.data, p.channel)
        if p.kind not in ("json_number", "json_null"):
            assert p.marker.encode() in p.data[:DEAD_LETTER_PREFIX]


def test_hostile_set_through_agents_is_dead_lettered_and_checked(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agents = [await _agent(fake_redis, a) for a in ("compliance", "risk", "execution")]
        payloads = hostile_payloads(11, 8, oversize_bytes=(70_000, 90_000))
        batch = await publish_hostile(fake_redis, payloads)
        for agent in agents:
            await _drain(agent)
        res = await check_hostile(fake_redis, batch, timeout_s=5)
        assert res.ok, (res.missing, res.unacked, res.outputs, res.restarted)
        groups = {"signals": 1, "signals:approved": 1, "orders": 1, "trading_events": 2,
                  "market_data": 1}  # execution's group only: no strategy agent here
        assert res.expected == res.dead_lettered == 8 * sum(groups.values())
        assert all(a.handled == [] for a in agents)  # nothing reached a handler
        assert res.unconsumed[channels.AGENT_CONTROL] == 8
        assert channels.SIGNALS not in res.unconsumed
        assert set(res.reasons_by_kind) <= set(KINDS) and all(res.reasons_by_kind.values())
        # A dead letter that does not say which entry (an older reader) is found by marker.
        (last,) = await fake_redis.xrevrange(channels.DEAD_LETTER, count=1)
        batch.start_ids[channels.DEAD_LETTER] = last[0].decode()
        one = next(pp for pp in batch.published if pp.payload.channel == channels.SIGNALS
                   and pp.payload.kind not in ("json_number", "json_null", "no_data_field"))
        await Bus(fake_redis, "orchestrator").dead_letter(channels.SIGNALS, one.payload.data, "x")
        again = await check_hostile(fake_redis, batch, timeout_s=0)
        assert again.dead_lettered == 0  # the group is "compliance", not "orchestrator"
        await Bus(fake_redis, "compliance").dead_letter(channels.SIGNALS, one.payload.data, "x")
        again = await check_hostile(fake_redis, batch, timeout_s=0)
        assert again.dead_lettered == 1

    asyncio.run(go())


def test_check_reports_missing_unacked_and_derived_outputs(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        agent = await _agent(fake_redis, "compliance")
        payloads = [p for p in hostile_payloads(5, 4, channel_names=[channels.SIGNALS],
                                                oversized=0)]
        batch = await publish_hostile(fake_redis, payloads)
        await agent.bus.read(agent.inputs, agent.agent_id, block_ms=None)  # read, not acked
        # An output that descends from a hostile payload (it carries the marker):
        leak = _signal().model_copy(update={"correlation_id": payloads[0].marker})
        await Bus(fake_redis, "x").publish(channels.SIGNALS_APPROVED, leak)
        res = await check_hostile(fake_redis, batch, timeout_s=0)
        assert not res.ok
        assert len(res.missing) == len(res.unacked) == 4
        assert {m[1] for m in res.missing} == {p.kind for p in payloads}
        assert len(res.outputs) == 1 and res.outputs[0].startswith("signals:approved ")

    asyncio.run(go())


# ------------------------------------------------------------------ the live tail
@FAST
@given(raw=st.one_of(st.binary(max_size=200), mutated_messages.map(lambda c: c[1])),
       channel=st.sampled_from(channels.ALL_CHANNELS))
def test_tail_summary_of_any_payload_is_one_line(raw: bytes, channel: str) -> None:
    line = summarize(channel, raw)
    assert line.startswith(channel + " ") and len(line) <= 160


def test_tail_summary_names_type_and_fields_or_why_not() -> None:
    assert summarize(channels.SIGNALS, _signal().to_json()).startswith(
        "signals signal_generated ")
    assert "symbol=ETH/BTC side=BUY" in summarize(channels.SIGNALS, _signal().to_json())
    assert summarize(channels.ORDERS, _signal().to_json()).startswith(
        "orders UNDECODABLE (") and "wrong channel" in summarize(channels.ORDERS,
                                                                   _signal().to_json())
