"""Kill switch, halt reset and the latch's database mirror (orchestrator/killswitch.py).

No HTTP: the functions run on fakeredis and a SQLite store, each test in its own
``asyncio.run`` (pytest-asyncio is not installed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import fakeredis.aioredis
import orjson
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from backend import channels
from backend.bus import DATA_FIELD, STATS_KEY, Bus
from backend.mesh.halt import (
    HALT_RESET_STATE,
    HALT_STATE,
    HaltReset,
    HaltState,
    parse_halt,
    read_halt,
    read_reset,
)
from backend.messages import (
    AuditRecorded,
    CancelAllOrders,
    ClosedPosition,
    KillSwitchExecuted,
    OrderCancelled,
    OrderStatus,
    PortfolioMarked,
    PositionSnapshot,
    Side,
    SubmitOrder,
    decode,
)
from backend.persistence import Store, make_engine
from orchestrator.killswitch import emergency_stop, reset_halt, sync_halt_latch

Redis = fakeredis.aioredis.FakeRedis


class Env:
    """One fake Redis server (new async clients on demand) and a seeded store."""

    def __init__(self, tmp_path: Path) -> None:
        self.server = fakeredis.FakeServer()
        self.store = Store(make_engine(f"sqlite:///{tmp_path}/k.db"))
        self.open_orders: list[str] = []

    def client(self) -> Redis:
        return Redis(server=self.server)

    def seed(self) -> None:
        """Orders in every status; ``open_orders`` = the live ones (NEW/ACCEPTED/UNKNOWN)."""
        for i, status in enumerate([OrderStatus.ACCEPTED, OrderStatus.FILLED, OrderStatus.NEW,
                                    OrderStatus.CANCELLED, OrderStatus.UNKNOWN,
                                    OrderStatus.REJECTED]):
            coid = f"tm-o-{i:024d}"
            self.store.record_order_intent(SubmitOrder(
                source="risk", client_order_id=coid, symbol="ETH/BTC", side=Side.BUY,
                quantity=1.0, signal_id=f"sig{i}", bar_seq=i))
            if status is not OrderStatus.NEW:
                self.store.update_order_status(coid, status)
            if status in (OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.UNKNOWN):
                self.open_orders.append(coid)

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.close()


def run(env: Env, fn: Callable[[Redis], Awaitable[Any]]) -> Any:
    """Run ``fn(async client)`` in a fresh event loop, closing the client afterwards."""

    async def main() -> Any:
        redis = env.client()
        try:
            return await fn(redis)
        finally:
            await redis.aclose()

    return asyncio.run(main())


def mark_json() -> bytes:
    return PortfolioMarked(
        source="execution", bar_seq=10, bar_time=1, cash=0.5, equity=1.0, exposure=0.5, day=0,
        day_start_equity=1.0, positions={
            "LTC/BTC": PositionSnapshot(quantity=2.0, avg_price=0.002, mark=0.0021),
            "ADA/BTC": PositionSnapshot(quantity=0.0, avg_price=0.0, mark=0.00001),
            "ETH/BTC": PositionSnapshot(quantity=-0.5, avg_price=0.05, mark=0.05),
        }).to_json()


def stream(sync: fakeredis.FakeRedis, name: str) -> list[Any]:
    return [decode(fields[DATA_FIELD]) for _id, fields in sync.xrange(name)]


async def fake_execution(
    redis: Redis, *, positions_left: dict[str, float] | None = None,
) -> CancelAllOrders:
    """Execution's side of the kill switch: read ``orders`` until a flattening
    CancelAllOrders arrives, then report a KillSwitchExecuted on ``trading_events``
    (after a decoy confirmation of another command, an unrelated event and garbage)."""
    bus = Bus(redis, "execution")
    last = "0-0"
    while True:
        resp = await redis.xread({channels.ORDERS: last}, block=100)
        for _stream, entries in resp or []:
            for entry_id, fields in entries:
                last = entry_id
                cmd = decode(fields[DATA_FIELD])
                if not (isinstance(cmd, CancelAllOrders) and cmd.flatten):
                    continue
                await bus.publish(channels.TRADING_EVENTS, KillSwitchExecuted(
                    source="execution", command_id="some-other-command", cancelled=["nope"]))
                await bus.publish(channels.TRADING_EVENTS, OrderCancelled(
                    source="execution", client_order_id="tm-o-1", symbol="ETH/BTC",
                    reason="kill switch"))
                await redis.xadd(channels.TRADING_EVENTS, {DATA_FIELD: b"not json"})
                await bus.publish(channels.TRADING_EVENTS, KillSwitchExecuted(
                    source="execution", command_id=cmd.id, correlation_id=cmd.id,
                    cancelled=["tm-o-a", "tm-o-b"],
                    flattened=[ClosedPosition(symbol="LTC/BTC", quantity=2.0, price=0.0021,
                                              client_order_id="tm-f-ltc")],
                    open_orders_left=[], positions_left=positions_left or {},
                ))
                return cmd


# ====================================================================== emergency stop
def test_emergency_stop_confirmed_by_execution(env: Env) -> None:
    env.seed()
    sync = fakeredis.FakeRedis(server=env.server)
    sync.set(channels.PORTFOLIO_KEY, mark_json())
    # an old confirmation of an earlier command is already on the stream
    sync.xadd(channels.TRADING_EVENTS, {DATA_FIELD: KillSwitchExecuted(
        source="execution", command_id="earlier").to_json()})

    async def go(redis: Redis) -> tuple[Any, CancelAllOrders]:
        execution = env.client()
        task = asyncio.create_task(fake_execution(execution))
        try:
            res = await emergency_stop(redis, env.store, reason="drill", actor="tester",
                                       wait_s=10)
            return res, await task
        finally:
            await execution.aclose()

    res, cmd = run(env, go)
    assert res.confirmed is True
    assert (res.halted, res.reason, res.command_id) == (True, "drill", cmd.id)
    assert res.cancelled_orders == ["tm-o-a", "tm-o-b"]
    assert [(p.symbol, p.quantity, p.price, p.client_order_id) for p in res.flattened] == \
        [("LTC/BTC", 2.0, 0.0021, "tm-f-ltc")]
    assert (res.open_orders_left, res.positions_left) == ([], {})
    assert "cancelled 2 orders and closed 1 positions" in res.message
    assert "NOT flat" not in res.message
    assert cmd.flatten is True and "drill" in cmd.reason
    halt = parse_halt(sync.get(channels.HALT_KEY))
    assert halt is not None and (halt.kind, halt.by, halt.reason) == ("kill_switch", "tester",
                                                                      "drill")
    assert res.latched_at == halt.ts


def test_confirmation_that_is_not_flat_says_so(env: Env) -> None:
    async def go(redis: Redis) -> Any:
        execution = env.client()
        task = asyncio.create_task(fake_execution(execution, positions_left={"ETH/BTC": 0.1}))
        try:
            res = await emergency_stop(redis, env.store, reason="r", actor="a", wait_s=10)
            await task
            return res
        finally:
            await execution.aclose()

    res = run(env, go)
    assert res.confirmed is True
    assert res.positions_left == {"ETH/BTC": 0.1}
    assert "NOT flat" in res.message


def test_emergency_stop_unconfirmed_reports_what_is_left(env: Env) -> None:
    env.seed()
    sync = fakeredis.FakeRedis(server=env.server)
    sync.set(channels.PORTFOLIO_KEY, mark_json())

    res = run(env, lambda r: emergency_stop(r, env.store, reason="nobody home", actor="cli",
                                            wait_s=0.2))
    assert (res.halted, res.confirmed) == (True, False)
    assert (res.cancelled_orders, res.flattened) == ([], [])
    assert sorted(res.open_orders_left) == sorted(env.open_orders)
    assert len(env.open_orders) == 3
    assert res.positions_left == {"LTC/BTC": 2.0, "ETH/BTC": -0.5}  # not the flat ADA/BTC
    assert "within 0.2s" in res.message and "queued" in res.message

    # the latch: Redis and its database mirror
    halt = parse_halt(sync.get(channels.HALT_KEY))
    assert halt is not None and (halt.kind, halt.by, halt.reason) == ("kill_switch", "cli",
                                                                      "nobody home")
    assert HaltState.model_validate(env.store.get_state(HALT_STATE)) == halt
    # the durable command for execution
    cmds = stream(sync, channels.ORDERS)
    assert len(cmds) == 1 and isinstance(cmds[0], CancelAllOrders)
    assert (cmds[0].id, cmds[0].flatten, cmds[0].source) == (res.command_id, True, "orchestrator")
    assert int(sync.hget(STATS_KEY, channels.ORDERS)) == 1
    # audited in the database and on the audit stream
    rows = env.store.audit(action="emergency_stop")
    assert [(r["actor"], r["decision"], r["reason"], r["subject_id"]) for r in rows] == \
        [("cli", "halted", "nobody home", res.command_id)]
    audits = stream(sync, channels.AUDIT)
    assert len(audits) == 1 and isinstance(audits[0], AuditRecorded)
    assert (audits[0].action, audits[0].id) == ("emergency_stop", rows[0]["id"])


def test_emergency_stop_without_wait_or_anything_left(env: Env) -> None:
    res = run(env, lambda r: emergency_stop(r, env.store, reason="r", actor="a", wait_s=0))
    assert res.confirmed is False
    assert (res.open_orders_left, res.positions_left) == ([], {})


def test_an_existing_latch_is_kept_but_the_command_still_queued(env: Env) -> None:
    sync = fakeredis.FakeRedis(server=env.server)
    breaker = HaltState(kind="circuit_breaker", by="risk", reason="daily drawdown 2.1%", ts=123)
    sync.set(channels.HALT_KEY, breaker.to_json())

    res = run(env, lambda r: emergency_stop(r, env.store, reason="also", actor="op", wait_s=0))
    assert parse_halt(sync.get(channels.HALT_KEY)) == breaker  # SET NX: the first latch stays
    assert res.latched_at == 123 and res.halted
    # the database latch was written first (Redis could have been down): halted there too
    assert env.store.get_state(HALT_STATE)["kind"] == "kill_switch"
    cmds = stream(sync, channels.ORDERS)
    assert [(type(c), c.id) for c in cmds] == [(CancelAllOrders, res.command_id)]
    assert [r["reason"] for r in env.store.audit(action="emergency_stop")] == ["also"]


def test_garbage_latch_counts_as_halted(env: Env) -> None:
    sync = fakeredis.FakeRedis(server=env.server)
    sync.set(channels.HALT_KEY, b"\x00garbage")
    halt = run(env, read_halt)
    assert halt is not None and (halt.kind, halt.reason) == ("restored", "unreadable halt record")
    res = run(env, lambda r: emergency_stop(r, env.store, reason="r", actor="a", wait_s=0))
    assert sync.get(channels.HALT_KEY) == b"\x00garbage"  # kept (NX), still halted
    assert res.halted and res.latched_at == 0
    assert env.store.get_state(HALT_STATE)["kind"] == "kill_switch"


def test_emergency_stop_with_redis_down_latches_the_database_first(env: Env) -> None:
    env.server.connected = False
    with pytest.raises(RedisConnectionError):
        run(env, lambda r: emergency_stop(r, env.store, reason="r", actor="a", wait_s=0))
    # the durable latch and the audit are written before Redis is touched
    assert env.store.get_state(HALT_STATE)["kind"] == "kill_switch"
    assert [r["reason"] for r in env.store.audit(action="emergency_stop")] == ["r"]
    # Redis back (empty): the orchestrator's sync puts the latch back
    env.server.connected = True
    halt = run(env, lambda r: sync_halt_latch(r, env.store))
    assert halt is not None and halt.kind == "kill_switch"
    assert parse_halt(fakeredis.FakeRedis(server=env.server).get(channels.HALT_KEY)) == halt


@pytest.mark.parametrize(("raw", "halted", "kind"), [
    (None, False, None),
    (b"garbage", True, "restored"),
    (b"[1, 2]", True, "restored"),
    (b'{"kind": "bogus"}', True, "restored"),
    (b'{"halted": false}', True, "restored"),
    (b"{}", True, "kill_switch"),
    (HaltState(kind="supervisor", reason="x").to_json(), True, "supervisor"),
])
def test_parse_halt(raw: bytes | None, halted: bool, kind: str | None) -> None:
    halt = parse_halt(raw)
    assert (halt is not None) is halted
    assert (halt.kind if halt else None) == kind


# ====================================================================== reset
def test_reset_clears_redis_and_the_database(env: Env) -> None:
    sync = fakeredis.FakeRedis(server=env.server)
    run(env, lambda r: emergency_stop(r, env.store, reason="drill", actor="op", wait_s=0))
    assert sync.get(channels.HALT_KEY) is not None
    assert env.store.get_state(HALT_STATE) is not None

    res = run(env, lambda r: reset_halt(r, env.store, reason="all clear", actor="op2"))
    assert (res.was_halted, res.halted, res.previous_reason) == (True, False, "kill_switch: drill")
    assert sync.get(channels.HALT_KEY) is None
    assert env.store.get_state(HALT_STATE) is None
    rows = env.store.audit(action="halt_reset")
    assert [(r["actor"], r["decision"]) for r in rows] == [("op2", "resumed")]
    assert rows[0]["reason"] == "all clear (was: kill_switch: drill) [reset #1]"
    assert [a.action for a in stream(sync, channels.AUDIT)] == ["emergency_stop", "halt_reset"]


def test_reset_of_a_latch_only_the_database_has(env: Env) -> None:
    env.store.put_state(HALT_STATE, HaltState(kind="circuit_breaker", reason="dd").model_dump(
        mode="json"))
    res = run(env, lambda r: reset_halt(r, env.store, reason="resume", actor="op"))
    assert (res.was_halted, res.previous_reason) == (True, "circuit_breaker: dd")
    assert env.store.get_state(HALT_STATE) is None


def test_reset_of_a_garbage_latch(env: Env) -> None:
    sync = fakeredis.FakeRedis(server=env.server)
    sync.set(channels.HALT_KEY, b"garbage")
    res = run(env, lambda r: reset_halt(r, env.store, reason="resume", actor="op"))
    assert res.was_halted is True
    assert sync.get(channels.HALT_KEY) is None


def test_reset_when_not_halted(env: Env) -> None:
    res = run(env, lambda r: reset_halt(r, env.store, reason="just in case", actor="op"))
    assert (res.was_halted, res.halted, res.previous_reason) == (False, False, None)
    assert res.message == "trading was not halted"
    rows = env.store.audit(action="halt_reset")
    assert [(r["decision"], r["reason"]) for r in rows] == \
        [("noop", "just in case (was not halted) [reset #1]")]


# ====================================================================== sync (DB = truth)
def test_sync_relatches_what_redis_lost_and_never_deletes_the_database_latch(
        env: Env) -> None:
    sync = fakeredis.FakeRedis(server=env.server)
    assert run(env, lambda r: sync_halt_latch(r, env.store)) is None
    assert env.store.get_state(HALT_STATE) is None

    # a breaker latched in Redis only (e.g. the DB write raced): recorded in the database
    first = HaltState(kind="circuit_breaker", by="risk", reason="dd", ts=10**18)
    sync.set(channels.HALT_KEY, first.to_json())
    assert run(env, lambda r: sync_halt_latch(r, env.store)) == first
    assert env.store.get_state(HALT_STATE) == first.model_dump(mode="json")

    # Redis loses its data (FLUSHALL): the latch is put back, not the DB copy deleted
    sync.flushall()
    assert run(env, lambda r: sync_halt_latch(r, env.store)) == first
    assert parse_halt(sync.get(channels.HALT_KEY)) == first
    assert env.store.get_state(HALT_STATE) == first.model_dump(mode="json")
    rows = env.store.audit(action="halt_restored")
    assert [(r["actor"], r["decision"]) for r in rows] == [("orchestrator", "halted")]
    assert "circuit_breaker: dd" in rows[0]["reason"]
    # again and again: only the database's latch comes back
    for _ in range(3):
        sync.delete(channels.HALT_KEY)
        assert run(env, lambda r: sync_halt_latch(r, env.store)) == first
    assert env.store.get_state(HALT_STATE) == first.model_dump(mode="json")


def test_sync_of_a_garbage_latch_is_halted_in_the_database(env: Env) -> None:
    sync = fakeredis.FakeRedis(server=env.server)
    sync.set(channels.HALT_KEY, b"garbage")
    run(env, lambda r: sync_halt_latch(r, env.store))
    assert env.store.get_state(HALT_STATE)["kind"] == "restored"


def test_sync_keeps_a_latch_redis_has(env: Env) -> None:
    sync = fakeredis.FakeRedis(server=env.server)
    current = HaltState(kind="circuit_breaker", reason="dd", ts=7)
    sync.set(channels.HALT_KEY, current.to_json())
    env.store.put_state(HALT_STATE, HaltState(kind="kill_switch", reason="old").model_dump(
        mode="json"))
    assert run(env, lambda r: sync_halt_latch(r, env.store)) == current
    assert parse_halt(sync.get(channels.HALT_KEY)) == current
    assert env.store.audit(action="halt_restored") == []


def test_reset_carries_a_generation_and_finishes_after_a_crash(env: Env) -> None:
    sync = fakeredis.FakeRedis(server=env.server)
    run(env, lambda r: emergency_stop(r, env.store, reason="one", actor="op", wait_s=0))
    run(env, lambda r: reset_halt(r, env.store, reason="ok", actor="op"))
    first = HaltReset.model_validate(env.store.get_state(HALT_RESET_STATE))
    assert first.generation == 1 and first.by == "op"
    assert run(env, read_reset) == first
    assert [r["reason"] for r in env.store.audit(action="halt_reset")][-1].endswith("[reset #1]")

    # a latch set before the reset is left in Redis (the reset died before its MULTI):
    stale = HaltState(kind="kill_switch", reason="one", ts=first.ts - 1)
    sync.set(channels.HALT_KEY, stale.to_json())
    sync.delete(channels.HALT_RESET_KEY)
    assert run(env, lambda r: sync_halt_latch(r, env.store)) is None
    assert sync.get(channels.HALT_KEY) is None
    assert run(env, read_reset) == first  # the reset record is put back too
    assert [r["decision"] for r in env.store.audit(action="halt_reset_finished")] == ["resumed"]

    # a second latch and reset: generation 2
    run(env, lambda r: emergency_stop(r, env.store, reason="two", actor="op", wait_s=0))
    run(env, lambda r: reset_halt(r, env.store, reason="ok", actor="op"))
    assert env.store.get_state(HALT_RESET_STATE)["generation"] == 2


def test_sync_does_nothing_when_both_are_clear(env: Env) -> None:
    sync = fakeredis.FakeRedis(server=env.server)
    assert run(env, lambda r: sync_halt_latch(r, env.store)) is None
    assert sync.get(channels.HALT_KEY) is None
    assert env.store.audit() == []
    assert sync.xlen(channels.AUDIT) == 0


def test_halt_state_json_round_trip() -> None:
    h = HaltState(kind="supervisor", by="orchestrator", reason="r", ts=5)
    assert orjson.loads(h.to_json()) == {"halted": True, "kind": "supervisor",
                                         "by": "orchestrator", "reason": "r", "ts": 5}
