"""Hostile payloads on every channel while the real agents run (real redis-server).

Every payload on a consumed stream must be dead-lettered (once per consumer group) with a
reason and acknowledged; no agent may crash or restart; nothing may reach the order path;
and the agents must still handle valid messages afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path

import orjson
import pytest
import redis

from backend import channels
from backend.bus import DATA_FIELD, Bus, pipeline_caught_up
from backend.mesh.topology import consumer_groups, control_groups
from backend.messages import (
    CHANNEL_TYPES,
    AuditRecorded,
    DeadLettered,
    DecodeError,
    Side,
    SignalGenerated,
    decode,
)
from orchestrator.drills.payloads import (
    KINDS,
    HostileBatch,
    MiB,
    hostile_payloads,
    publish_hostile,
)
from orchestrator.drills.payloads_check import HostileResult, check_hostile
from tests.support.agentproc import T0, agent_env, bar, make_settings, running, start_agent, stop
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration

AGENTS = {  # agent id -> (role, symbol)
    "strategy:ETHBTC": ("strategy", "ETH/BTC"),
    "compliance": ("compliance", None),
    "risk": ("risk", None),
    "execution": ("execution", None),
    "optimizer": ("optimizer", None),
}


def _start(env: dict[str, str], tmp: Path) -> dict[str, subprocess.Popen[bytes]]:
    return {a: start_agent(role, env, tmp, sym) for a, (role, sym) in AGENTS.items()}


async def _drill(url: str, seed: int) -> tuple[HostileBatch, HostileResult]:
    r = redis.asyncio.Redis.from_url(url)
    try:
        payloads = hostile_payloads(seed, len(KINDS), oversize_bytes=(2 * MiB, 20 * MiB))
        batch = await publish_hostile(r, payloads)
        return batch, await check_hostile(r, batch, timeout_s=90)
    finally:
        await r.aclose()


def _messages(r: redis.Redis, stream: str) -> list:
    """The messages of ``stream`` that decode (we put hostile entries on it, too)."""
    out = []
    for _eid, fields in r.xrange(stream):
        with contextlib.suppress(DecodeError):
            out.append(decode((fields or {}).get(DATA_FIELD, b"")))
    return out


def _publish(url: str, channel: str, msg) -> None:  # noqa: ANN001
    async def go() -> None:
        r = redis.asyncio.Redis.from_url(url)
        await Bus(r, "test").publish(channel, msg)
        await r.aclose()

    asyncio.run(go())


def test_hostile_payloads_on_every_channel_are_dead_lettered_and_harmless(
    redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, redis_url, symbols=["ETH/BTC"])
    env = agent_env(settings, tmp_path)
    r = redis.Redis.from_url(redis_url)
    procs = _start(env, tmp_path)
    try:
        for a in AGENTS:
            eventually(lambda a=a: running(r, a), 60, message=f"{a} running")
        watched = (channels.ORDERS, channels.SIGNALS_APPROVED, channels.SIGNALS_REJECTED,
                   channels.TRADING_EVENTS)
        before = {s: r.xlen(s) for s in watched}
        batch, res = asyncio.run(_drill(redis_url, seed=8))

        # Every consumed payload dead-lettered by every group of its stream, and acked.
        assert res.ok, (res.missing, res.unacked, res.outputs, res.restarted)
        groups = {s: len(g) for s, g in (consumer_groups(settings)
                                         | control_groups(settings)).items()}
        assert res.expected == res.dead_lettered == len(KINDS) * sum(groups.values())
        assert set(res.unconsumed) == set(channels.ALL_CHANNELS) - set(groups)
        for kind, reasons in res.reasons_by_kind.items():
            assert reasons and all(reasons), kind
        assert any("exceeds 65536" in x for x in res.reasons_by_kind["oversized"])
        assert any("wrong channel" in x for x in res.reasons_by_kind["wrong_channel"])
        assert any("expected exactly 'data'" in x for x in res.reasons_by_kind["no_data_field"])

        # The records are bounded and name their entry.
        ours = [m for m in _messages(r, channels.DEAD_LETTER)
                if isinstance(m, DeadLettered) and m.entry_id]
        assert len(ours) == res.expected
        assert all(len(m.payload) <= 4000 and m.reason for m in ours)
        assert max(m.size for m in ours) >= 2 * MiB  # the oversized one, kept as a prefix

        # No agent died or restarted; no order, approval or fill came of it.
        assert all(p.poll() is None for p in procs.values())
        assert not res.restarted
        hostile = {s: sum(1 for pp in batch.published if pp.payload.channel == s)
                   for s in watched}
        for s in watched:  # only the hostile entries we added ourselves
            assert r.xlen(s) == before[s] + hostile[s], s

        # The agents still handle valid input: a bar, then a signal on that bar.
        _publish(redis_url, channels.MARKET_DATA, bar(1))
        eventually(lambda: r.xlen(channels.TRADING_EVENTS) > before[channels.TRADING_EVENTS]
                   + hostile[channels.TRADING_EVENTS],
                   30, message="execution marked the portfolio for the valid bar")
        sig = SignalGenerated(
            source="strategy:ETHBTC", symbol="ETH/BTC", side=Side.BUY, confidence=0.9,
            entry_price=0.1, stop_loss=0.095, take_profit=0.11, reason="valid after hostile",
            strategy="sma_cross", bar_seq=1, bar_time=T0 + 300_000_000_000,
        )
        _publish(redis_url, channels.SIGNALS, sig)

        def decided() -> bool:
            audits = {m.actor: m for m in _messages(r, channels.AUDIT)
                      if isinstance(m, AuditRecorded) and m.subject_id == sig.id}
            c = audits.get("compliance")
            return c is not None and (c.decision != "approved" or "risk" in audits)
        eventually(decided, 30, message="compliance (and risk) decided the valid signal")
        all_groups = consumer_groups(settings)

        async def caught_up() -> bool:
            a = redis.asyncio.Redis.from_url(redis_url)
            try:
                return await pipeline_caught_up(a, all_groups)
            finally:
                await a.aclose()
        eventually(lambda: asyncio.run(caught_up()), 30,
                   message="every order-path group read and acked everything")
        assert all(p.poll() is None for p in procs.values())
        assert {a: p.pid for a, p in procs.items()} == {
            a: orjson.loads(r.get(channels.health_key(a)))["pid"] for a in AGENTS}
    finally:
        codes = {a: stop(p) for a, p in procs.items()}
    assert codes == dict.fromkeys(AGENTS, 0)  # clean exits: nobody faulted


def test_strategy_restarts_cleanly_after_hostile_market_data(
    redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, redis_url, symbols=["ETH/BTC"])
    env = agent_env(settings, tmp_path)
    r = redis.Redis.from_url(redis_url)
    proc = start_agent("strategy", env, tmp_path, "ETH/BTC")
    try:
        eventually(lambda: running(r, "strategy:ETHBTC"), 60, message="strategy running")
        _publish(redis_url, channels.MARKET_DATA, bar(1))
        r.xadd(channels.MARKET_DATA, {b"data": b"junk \xff"})
        r.xadd(channels.MARKET_DATA, {b"foo": bar(2).to_json()})
        _publish(redis_url, channels.MARKET_DATA, bar(3))
        eventually(lambda: r.xlen(channels.DEAD_LETTER) == 2, 30, message="2 dead letters")
        assert stop(proc) == 0
        proc = start_agent("strategy", env, tmp_path, "ETH/BTC")  # warm-up reads them again
        eventually(lambda: running(r, "strategy:ETHBTC") or proc.poll() is not None, 60)
        assert proc.poll() is None and running(r, "strategy:ETHBTC")
    finally:
        stop(proc)


def test_channel_types_cover_exactly_the_consumed_streams() -> None:
    assert set(CHANNEL_TYPES) == set(channels.ORDER_PATH_STREAMS + channels.CONTROL_STREAMS)
