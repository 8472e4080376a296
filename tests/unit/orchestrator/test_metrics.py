"""Prometheus metrics of the mesh and the stream-based latency tracker (fakeredis)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import fakeredis
import fakeredis.aioredis
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import ConnectionError as RedisConnectionError

from backend import channels
from backend.bus import DATA_FIELD
from backend.messages import (
    ExitReason,
    Message,
    OrderFilled,
    ReplayFinished,
    Side,
    SignalGenerated,
    SubmitOrder,
    client_order_id_for,
)
from backend.rest.models import AgentInfo
from orchestrator.latency import LatencyTracker
from orchestrator.metrics import AGENT_STATES, MeshMetrics


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def samples(m: MeshMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, ctype = m.render()
    assert ctype.startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(m: MeshMetrics, name: str, **labels: str) -> float | None:
    return samples(m).get((name, frozenset(labels.items())))


def names(m: MeshMetrics) -> set[str]:
    return {n for n, _ in samples(m)}


def agent(agent_id: str, role: str, state: str = "running", **kw: Any) -> AgentInfo:
    return AgentInfo(agent_id=agent_id, role=role, state=state, desired="running", **kw)


# ====================================================================== MeshMetrics
def test_agent_metrics_render() -> None:
    m = MeshMetrics()
    m.set_agents([
        agent("risk", "risk", heartbeat_age_s=0.5, restarts=2, messages_in=10, messages_out=9,
              errors=1, dead_letters=3),
        agent("strategy:ETHBTC", "strategy", state="faulted"),
    ])
    risk = {"agent_id": "risk", "role": "risk"}
    strat = {"agent_id": "strategy:ETHBTC", "role": "strategy"}
    assert val(m, "tradingmesh_agent_up", **risk) == 1.0
    assert val(m, "tradingmesh_agent_up", **strat) == 0.0
    assert val(m, "tradingmesh_agent_heartbeat_age_seconds", **risk) == 0.5
    assert val(m, "tradingmesh_agent_restarts", **risk) == 2.0
    assert val(m, "tradingmesh_agent_messages_in", **risk) == 10.0
    assert val(m, "tradingmesh_agent_messages_out", **risk) == 9.0
    assert val(m, "tradingmesh_agent_errors", **risk) == 1.0
    assert val(m, "tradingmesh_agent_dead_letters", **risk) == 3.0
    for state in AGENT_STATES:
        want = 1.0 if state == "faulted" else 0.0
        assert val(m, "tradingmesh_agent_state", **strat, tradingmesh_agent_state=state) == want
    assert val(m, "tradingmesh_agent_state", **risk, tradingmesh_agent_state="running") == 1.0


def test_nan_heartbeat_age_renders() -> None:
    m = MeshMetrics()
    m.set_agents([agent("execution", "execution", state="no_heartbeat")])
    body, _ = m.render()
    assert (b'tradingmesh_agent_heartbeat_age_seconds{agent_id="execution",role="execution"} NaN'
            in body)
    age = val(m, "tradingmesh_agent_heartbeat_age_seconds", agent_id="execution",
              role="execution")
    assert age is not None and math.isnan(age)


def test_removed_agent_disappears() -> None:
    m = MeshMetrics()
    m.set_agents([agent("risk", "risk"), agent("compliance", "compliance")])
    assert b'agent_id="compliance"' in m.render()[0]
    m.set_agents([agent("risk", "risk", messages_in=5)])
    body = m.render()[0]
    assert b'agent_id="compliance"' not in body
    assert val(m, "tradingmesh_agent_messages_in", agent_id="risk", role="risk") == 5.0
    m.set_agents([])
    assert b"agent_id=" not in m.render()[0]


def test_trading_metrics_and_vanished_status() -> None:
    m = MeshMetrics()
    m.set_trading({"FILLED": 7, "REJECTED": 2}, equity=10_250.5, drawdown=0.013,
                  daily_drawdown=0.004, halted=False)
    assert val(m, "tradingmesh_orders", status="FILLED") == 7.0
    assert val(m, "tradingmesh_orders", status="REJECTED") == 2.0
    assert val(m, "tradingmesh_equity") == 10_250.5
    assert val(m, "tradingmesh_drawdown") == 0.013
    assert val(m, "tradingmesh_daily_drawdown") == 0.004
    assert val(m, "tradingmesh_breaker_halted") == 0.0
    m.set_trading({"FILLED": 8}, equity=None, drawdown=None, daily_drawdown=None, halted=True)
    assert val(m, "tradingmesh_orders", status="FILLED") == 8.0
    assert val(m, "tradingmesh_orders", status="REJECTED") is None
    assert math.isnan(val(m, "tradingmesh_equity"))  # type: ignore[arg-type]
    assert val(m, "tradingmesh_breaker_halted") == 1.0


def test_histograms_and_private_registries() -> None:
    a, b = MeshMetrics(), MeshMetrics()  # no "Duplicated timeseries" error
    a.observe_signal_to_order(0.002)
    a.observe_order_to_fill(42.0)
    assert val(a, "tradingmesh_signal_to_order_seconds_count") == 1.0
    assert val(a, "tradingmesh_signal_to_order_seconds_bucket", le="0.0025") == 1.0
    assert val(a, "tradingmesh_signal_to_order_seconds_bucket", le="0.001") == 0.0
    assert val(a, "tradingmesh_order_to_fill_seconds_bucket", le="60.0") == 1.0
    assert val(a, "tradingmesh_order_to_fill_seconds_bucket", le="30.0") == 0.0
    assert val(a, "tradingmesh_order_to_fill_seconds_bucket", le="300.0") == 1.0
    assert val(b, "tradingmesh_signal_to_order_seconds_count") == 0.0
    assert REGISTRY.get_sample_value("tradingmesh_equity") is None
    assert all(n.startswith("tradingmesh_") for n in names(a))


# ====================================================================== LatencyTracker
def signal(n: int = 1) -> SignalGenerated:
    return SignalGenerated(
        id=f"sig{n}", correlation_id=f"sig{n}", source="strategy:ETHBTC", symbol="ETH/BTC",
        side=Side.BUY, confidence=0.7, entry_price=0.05, stop_loss=0.049, take_profit=0.052,
        reason="test", strategy="sma", bar_seq=n, bar_time=1_000,
    )


def order(sig: SignalGenerated, leg: str = "o") -> SubmitOrder:
    return SubmitOrder(
        source="risk", correlation_id=sig.id, client_order_id=client_order_id_for(sig.id, leg),
        symbol=sig.symbol, side=sig.side, quantity=1.5, signal_id=sig.id, bar_seq=sig.bar_seq,
    )


def fill(coid: str, n: int = 0, exit_reason: ExitReason = ExitReason.ENTRY) -> OrderFilled:
    return OrderFilled(
        source="execution", fill_id=f"{coid}-f{n}", client_order_id=coid, symbol="ETH/BTC",
        side=Side.BUY, quantity=1.5, price=0.05, fee=0.0001, exit_reason=exit_reason,
        bar_seq=1, fill_time=1_000,
    )


async def xadd(redis: Any, stream: str, entry_id: str, msg: Message | bytes) -> None:
    data = msg if isinstance(msg, bytes) else msg.to_json()
    await redis.xadd(stream, {DATA_FIELD: data}, id=entry_id)


def hist(m: MeshMetrics, name: str) -> tuple[float | None, float | None]:
    return val(m, f"tradingmesh_{name}_seconds_sum"), val(m, f"tradingmesh_{name}_seconds_count")


def test_tracker_times_signal_order_fill_by_entry_id(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        m = MeshMetrics()
        tr = LatencyTracker(m)
        assert await tr.poll(fake_redis) == 0  # "$" on empty streams: from the start
        s = signal()
        o = order(s)
        await xadd(fake_redis, channels.SIGNALS, "1000-0", s)
        await xadd(fake_redis, channels.ORDERS, "1250-0", o)
        await xadd(fake_redis, channels.TRADING_EVENTS, "1600-0", fill(o.client_order_id))
        await xadd(fake_redis, channels.TRADING_EVENTS, "1700-0", fill(o.client_order_id, 1))
        assert await tr.poll(fake_redis) == 4
        assert hist(m, "signal_to_order") == (pytest.approx(0.25), 1.0)
        assert hist(m, "order_to_fill") == (pytest.approx(0.35), 1.0)  # first fill only
        assert await tr.poll(fake_redis) == 0  # nothing new, nothing counted twice
        assert hist(m, "signal_to_order")[1] == 1.0

    run(go())


def test_tracker_ignores_unknown_coid_fills_and_garbage(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        m = MeshMetrics()
        tr = LatencyTracker(m, start_ids={s: "0-0" for s in channels.STREAMS})
        s = signal()
        o = order(s)
        await xadd(fake_redis, channels.SIGNALS, "1000-0", s)
        await xadd(fake_redis, channels.SIGNALS, "1001-0", b"{not json")
        await xadd(fake_redis, channels.SIGNALS, "1002-0", b'{"type": "signal_generated"}')
        await fake_redis.xadd(channels.SIGNALS, {b"other": b"x"}, id="1003-0")  # no data field
        await xadd(fake_redis, channels.ORDERS, "1500-0", o)
        await xadd(fake_redis, channels.ORDERS, "1501-0", ReplayFinished(source="x", bars=1,
                                                                         last_seq=1))
        flat = f"{o.client_order_id}-flat"
        await xadd(fake_redis, channels.TRADING_EVENTS, "1900-0",
                   fill(flat, exit_reason=ExitReason.FLATTEN))
        await xadd(fake_redis, channels.TRADING_EVENTS, "2000-0",
                   fill("venue-stop-1", exit_reason=ExitReason.STOP_LOSS))
        assert await tr.poll(fake_redis) == 8
        assert tr.skipped == 3
        assert hist(m, "signal_to_order") == (pytest.approx(0.5), 1.0)
        assert hist(m, "order_to_fill") == (0.0, 0.0)

    run(go())


def test_tracker_starts_at_dollar(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        m = MeshMetrics()
        s = signal()
        await xadd(fake_redis, channels.SIGNALS, "1000-0", s)  # before the tracker started
        tr = LatencyTracker(m)
        assert await tr.poll(fake_redis) == 0
        o = order(s)
        await xadd(fake_redis, channels.ORDERS, "1250-0", o)
        await xadd(fake_redis, channels.TRADING_EVENTS, "1300-0", fill(o.client_order_id))
        assert await tr.poll(fake_redis) == 2
        assert hist(m, "signal_to_order") == (0.0, 0.0)  # its signal was never seen
        assert hist(m, "order_to_fill") == (pytest.approx(0.05), 1.0)

    run(go())


def test_tracker_matches_ends_read_out_of_order(fake_redis) -> None:  # noqa: ANN001
    """A capped XREAD (count=1) returns the order before the signal backlog is read."""
    async def go() -> None:
        m = MeshMetrics()
        tr = LatencyTracker(m, start_ids={s: "0-0" for s in channels.STREAMS}, count=1)
        s1, s2 = signal(1), signal(2)
        o2 = order(s2)
        await xadd(fake_redis, channels.SIGNALS, "1000-0", s1)
        await xadd(fake_redis, channels.SIGNALS, "1100-0", s2)
        await xadd(fake_redis, channels.ORDERS, "1400-0", o2)
        await xadd(fake_redis, channels.TRADING_EVENTS, "2400-0", fill(o2.client_order_id))
        assert await tr.poll(fake_redis) == 3  # s1, o2 and its fill: s2 still unread
        assert hist(m, "order_to_fill") == (pytest.approx(1.0), 1.0)
        assert hist(m, "signal_to_order") == (0.0, 0.0)
        assert await tr.poll(fake_redis) == 1  # s2
        assert hist(m, "signal_to_order") == (pytest.approx(0.3), 1.0)

    run(go())


def test_tracker_dedupes_redelivered_and_non_causal(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        m = MeshMetrics()
        tr = LatencyTracker(m, start_ids={s: "0-0" for s in channels.STREAMS})
        s = signal()
        o = order(s)
        await xadd(fake_redis, channels.SIGNALS, "1000-0", s)
        await xadd(fake_redis, channels.SIGNALS, "1050-0", s)  # redelivered copy
        await xadd(fake_redis, channels.ORDERS, "1100-0", o)
        await xadd(fake_redis, channels.ORDERS, "1200-0", o)  # redelivered copy
        await tr.poll(fake_redis)
        assert hist(m, "signal_to_order") == (pytest.approx(0.1), 1.0)
        # a fill recorded before an order with its id reached Redis is not a latency
        late = order(signal(9))
        await xadd(fake_redis, channels.TRADING_EVENTS, "1300-0", fill(late.client_order_id))
        await xadd(fake_redis, channels.ORDERS, "1400-0", late)
        await tr.poll(fake_redis)
        assert hist(m, "order_to_fill") == (0.0, 0.0)

    run(go())


def test_tracker_tables_are_bounded(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        m = MeshMetrics()
        tr = LatencyTracker(m, max_tracked=2, start_ids={s: "0-0" for s in channels.STREAMS})
        sigs = [signal(i) for i in range(1, 5)]
        for i, s in enumerate(sigs):
            await xadd(fake_redis, channels.SIGNALS, f"{1000 + i}-0", s)
        for i in range(5):
            await xadd(fake_redis, channels.TRADING_EVENTS, f"{3000 + i}-0", fill(f"x{i}"))
        await tr.poll(fake_redis)
        assert list(tr._signals) == ["sig3", "sig4"]
        assert len(tr._early_fills) == 2
        await xadd(fake_redis, channels.ORDERS, "2000-0", order(sigs[0]))  # dropped signal
        await xadd(fake_redis, channels.ORDERS, "2001-0", order(sigs[3]))
        await tr.poll(fake_redis)
        assert hist(m, "signal_to_order") == (pytest.approx(0.998), 1.0)

    run(go())


def test_tracker_leaves_consumer_groups_alone(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        await fake_redis.xgroup_create(channels.ORDERS, "execution", id="0", mkstream=True)
        s = signal()
        await xadd(fake_redis, channels.ORDERS, "1000-0", order(s))
        tr = LatencyTracker(MeshMetrics(), start_ids={s: "0-0" for s in channels.STREAMS})
        assert await tr.poll(fake_redis) == 1
        groups = await fake_redis.xinfo_groups(channels.ORDERS)
        assert [g["name"] for g in groups] == [b"execution"]
        assert groups[0]["pending"] == 0
        assert groups[0]["last-delivered-id"] == b"0-0"
        for stream in (channels.SIGNALS, channels.TRADING_EVENTS):
            assert not await fake_redis.exists(stream)  # not created either

    run(go())


def test_tracker_with_decoded_responses() -> None:
    server = fakeredis.FakeServer()
    redis = fakeredis.aioredis.FakeRedis(server=server, decode_responses=True)

    async def go() -> None:
        m = MeshMetrics()
        tr = LatencyTracker(m, start_ids={s: "0-0" for s in channels.STREAMS})
        s = signal()
        await redis.xadd(channels.SIGNALS, {"data": s.to_json().decode()}, id="1000-0")
        await redis.xadd(channels.ORDERS, {"data": order(s).to_json().decode()}, id="1125-0")
        assert await tr.poll(redis) == 2
        assert hist(m, "signal_to_order") == (pytest.approx(0.125), 1.0)

    run(go())


# ---------------------------------------------------------------- run loop
class _StopOnFill(MeshMetrics):
    def __init__(self, stop: asyncio.Event) -> None:
        super().__init__()
        self.stop = stop

    def observe_order_to_fill(self, seconds: float) -> None:
        super().observe_order_to_fill(seconds)
        self.stop.set()


def test_run_polls_until_stopped(fake_redis) -> None:  # noqa: ANN001
    async def go() -> None:
        stop = asyncio.Event()
        m = _StopOnFill(stop)
        o = order(signal())
        await xadd(fake_redis, channels.ORDERS, "1000-0", o)
        await xadd(fake_redis, channels.TRADING_EVENTS, "1010-0", fill(o.client_order_id))
        tr = LatencyTracker(m, start_ids={s: "0-0" for s in channels.STREAMS})
        await asyncio.wait_for(tr.run(fake_redis, stop, block_ms=10), timeout=30)
        assert hist(m, "order_to_fill") == (pytest.approx(0.01), 1.0)

    run(go())


class _FlakyRedis:
    """Fails every call; sets ``stop`` on the third."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.calls = 0

    async def xrevrange(self, *a: Any, **kw: Any) -> Any:
        self.calls += 1
        if self.calls >= 3:
            self.stop.set()
        raise RedisConnectionError("connection refused")

    async def xread(self, *a: Any, **kw: Any) -> Any:  # pragma: no cover - never reached
        raise AssertionError


def test_run_survives_redis_errors() -> None:
    async def go() -> None:
        stop = asyncio.Event()
        redis = _FlakyRedis(stop)
        tr = LatencyTracker(MeshMetrics())
        await asyncio.wait_for(tr.run(redis, stop, retry_s=0), timeout=30)
        assert redis.calls == 3
        await tr.run(redis, stop)  # already stopped: returns at once
        assert redis.calls == 3

    run(go())
