"""The mesh's Redis ACL on a real redis-server (7.x): what each user may and may not do.

* Each agent role runs its agent's own Redis code (the ``Agent`` base: groups, heartbeat,
  errors, dead letters, state; and the role's specific calls) and ``ACL LOG`` stays empty.
* Forbidden writes get ``NOPERM`` (also inside MULTI/EXEC); the dashboard writes nothing.
* No authentication, a wrong password or the ``default`` user: refused.
* The server listens on 127.0.0.1 only, protected mode on, no password on its command line.

``serve --acl``, ``ensure_redis``, a whole run against an ACL server and a restart from the
AOF: test_redis_acl_server.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis
import redis.asyncio
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from agents.base import Agent
from agents.optimizer import OptimizerAgent
from agents.strategy import StrategyAgent
from backend import channels
from backend.bus import STATS_KEY, Bus, pipeline_caught_up, trim_consumed
from backend.marketdata.history import load_history, read_bars_after
from backend.mesh import topology
from backend.mesh.halt import HaltState, read_halt, read_reset
from backend.mesh.hotreload import running_params
from backend.messages import (
    AuditRecorded,
    ParamsProposed,
    ReplayFinished,
    Side,
    SubmitOrder,
    client_order_id_for,
    now_ns,
)
from backend.ml.live import ml_state_key
from backend.persistence import Store, make_engine
from backend.redisctl.acl import (
    ADMIN,
    AGENT_ROLES,
    DASHBOARD,
    ORCHESTRATOR,
    USERS,
    read_credentials,
    role_url,
)
from backend.redisctl.server import RedisServer
from backend.settings import Settings
from backend.venues.paper.adapter import PaperVenue
from orchestrator import killswitch
from tests.support.agentproc import bar, make_settings
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NOPERM = redis.exceptions.NoPermissionError


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("CI=true but redis-server is not on PATH")
        pytest.skip("redis-server not on PATH")
    server = RedisServer.with_acl(tmp_path_factory.mktemp("acl-redis"), die_with_parent=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def creds(acl_server: RedisServer) -> dict[str, SecretStr]:
    assert acl_server.credentials_path is not None
    return read_credentials(acl_server.credentials_path)


@pytest.fixture
def urls(acl_server: RedisServer, creds: dict[str, SecretStr]) -> dict[str, str]:
    """User -> URL, on an emptied server with an empty ACL LOG."""
    with acl_server.client() as admin:
        admin.flushall()
        admin.acl_log_reset()
    return {u: role_url(acl_server.public_url, u, creds) for u in USERS}


def _acl_log(server: RedisServer) -> list[dict]:
    with server.client() as admin:
        return admin.acl_log()


def _denials(server: RedisServer) -> list[tuple[str, str, str]]:
    return [(e["username"], e["reason"], e["object"]) for e in _acl_log(server)]


def _run(fn: Callable[..., Awaitable[None]], *args: object) -> None:
    asyncio.run(fn(*args))


def _settings(tmp: Path, url: str) -> Settings:
    return make_settings(tmp, url, symbols=["ETH/BTC"])


async def _seed(admin_url: str, settings: Settings) -> None:
    """What the mesh would hold: a bar, a signal, an approval, an order, a portfolio mark."""
    r = redis.asyncio.Redis.from_url(admin_url)
    bus = Bus(r, "seed")
    for seq in range(1, 4):
        await bus.publish(channels.MARKET_DATA, bar(seq))
    for stream in (*channels.ORDER_PATH_STREAMS, *channels.CONTROL_STREAMS):
        await bus.publish(stream, ReplayFinished(source="seed", bars=3, last_seq=3))
    await r.aclose()


async def _agent_basics(url: str, agent_id: str, settings: Settings) -> Agent:
    """The ``Agent`` base class' own Redis use, as ``agent_id`` (returned connected)."""
    agent = Agent(settings, agent_id)
    agent.redis = redis.asyncio.Redis.from_url(url)
    agent.bus = Bus(agent.redis, agent_id)
    await agent._connect()
    for stream in agent.inputs:
        await agent.bus.ensure_group(stream, agent_id)
    await agent._beat()
    await agent.report_error("acl drill: a reported error")
    batch = await agent.bus.read(agent.inputs, agent_id, block_ms=10) if agent.inputs else []
    if agent.inputs:
        assert batch, f"{agent_id} read nothing from {agent.inputs}"
    pipe = agent.redis.pipeline(transaction=True)
    agent.stage_state(pipe, b"{}")
    agent.stage_handled(pipe, "msg-1")
    for d in batch:
        agent.bus.stage_ack(pipe, d.stream, agent_id, d.entry_id)
    await pipe.execute()
    assert await agent.already_handled("msg-1")
    assert await agent.load_state() == b"{}"
    await agent.bus.dead_letter(channels.SIGNALS, b"not json", "acl drill")
    return agent


async def _market_data(url: str, s: Settings) -> None:
    a = await _agent_basics(url, "market_data", s)
    assert a.redis is not None
    pipe = a.redis.pipeline(transaction=True)
    a.emit(pipe, channels.MARKET_DATA, bar(4))
    pipe.set(channels.REPLAY_CURSOR_KEY, 4)
    await pipe.execute()
    await pipeline_caught_up(a.redis, topology.consumer_groups(s))
    if not await a.redis.exists(channels.REPLAY_DONE_KEY):
        await a.redis.set(channels.REPLAY_DONE_KEY, 4)
    await a.bus.publish(channels.AGENT_BROADCAST, ReplayFinished(source="md", bars=4,  # type: ignore[union-attr]
                                                                 last_seq=4))
    assert await a.redis.get(channels.REPLAY_CURSOR_KEY) == b"4"
    await a.redis.aclose()


async def _strategy(url: str, s: Settings) -> None:
    agent_id = topology.strategy_id("ETH/BTC")
    await (await _agent_basics(url, agent_id, s)).redis.aclose()  # type: ignore[union-attr]
    st = StrategyAgent(s, agent_id, symbol="ETH/BTC")
    st.redis = redis.asyncio.Redis.from_url(url)
    st.bus = Bus(st.redis, agent_id)
    await st._restore_params()  # GET/SET its state
    await st._warm_up()  # XINFO GROUPS, XPENDING, XRANGE market_data
    pipe = st.redis.pipeline(transaction=True)
    for ch in (channels.SIGNALS, channels.STRATEGY_PARAMS, channels.AUDIT,
               channels.RETRAIN_STATUS, channels.MODEL_METRICS):
        st.emit(pipe, ch, ReplayFinished(source=agent_id, bars=1, last_seq=1))
    pipe.set(ml_state_key(agent_id), b"{}")
    await pipe.execute()
    await st.redis.get(ml_state_key(agent_id))
    await st.redis.aclose()


async def _compliance(url: str, s: Settings) -> None:
    a = await _agent_basics(url, "compliance", s)
    pipe = a.redis.pipeline(transaction=True)  # type: ignore[union-attr]
    for ch in (channels.SIGNALS_APPROVED, channels.SIGNALS_REJECTED, channels.AUDIT):
        a.emit(pipe, ch, ReplayFinished(source="compliance", bars=1, last_seq=1))
    await pipe.execute()
    await a.redis.aclose()  # type: ignore[union-attr]


async def _risk(url: str, s: Settings) -> None:
    a = await _agent_basics(url, "risk", s)
    r = a.redis
    assert r is not None
    hist, cursor = await load_history(r, 10, s.symbols)
    assert hist.last_seq == 3
    await read_bars_after(r, "0", 3)
    assert await read_halt(r) is None
    assert await read_reset(r) is None  # GET mesh:halt:reset (issue 15)
    pipe = r.pipeline(transaction=True)
    pipe.set(channels.HALT_KEY, HaltState(kind="circuit_breaker", by="risk", reason="drill")
             .to_json())
    for ch in (channels.ORDERS, channels.SIGNALS_REJECTED, channels.RISK_ALERTS, channels.AUDIT):
        a.emit(pipe, ch, ReplayFinished(source="risk", bars=1, last_seq=1))
    await pipe.execute()
    assert await read_halt(r) is not None
    await r.aclose()


async def _execution(url: str, s: Settings) -> None:
    a = await _agent_basics(url, "execution", s)
    r = a.redis
    assert r is not None
    venue = PaperVenue(r, s.paper)
    await venue.load()
    coid = client_order_id_for("sig-acl")
    order = SubmitOrder(source="risk", correlation_id="sig-acl", client_order_id=coid,
                        symbol="ETH/BTC", side=Side.BUY, quantity=1.0, signal_id="sig-acl",
                        bar_seq=3)
    assert not await r.exists(channels.HALT_KEY)
    events = [await venue.submit(order, now_ns()), *await venue.on_bar(bar(4))]
    assert await venue.fetch_order(coid, "ETH/BTC") is not None  # HGET order log, HVALS
    mark = venue.portfolio(bar(4))
    pipe = r.pipeline(transaction=True)
    for ev in [*events, mark]:
        a.emit(pipe, channels.TRADING_EVENTS, ev)
    a.emit(pipe, channels.AUDIT, AuditRecorded(source="execution", actor="execution",
                                               action="drill", decision="ok", reason="acl"))
    pipe.set(channels.PORTFOLIO_KEY, mark.to_json())
    venue.stage(pipe)  # SET book, HSET orders / order log / fills
    await pipe.execute()
    venue.commit()
    await venue.load()  # GET book, HGETALL orders and rejects
    assert await venue.positions() == {"ETH/BTC": 1.0}
    # a stuck order command latches the halt: SET NX (and nothing else) on mesh:halt
    await r.set(channels.HALT_KEY, HaltState(kind="stuck", by="execution").to_json(), nx=True)
    assert await read_halt(r) is not None
    await r.aclose()


async def _optimizer(url: str, s: Settings) -> None:
    a = await _agent_basics(url, "optimizer", s)
    await a.redis.aclose()  # type: ignore[union-attr]
    opt = OptimizerAgent(s)
    opt.redis = redis.asyncio.Redis.from_url(url)
    opt.bus = Bus(opt.redis, "optimizer")
    assert len(await opt.bars("ETH/BTC")) == 3  # XREVRANGE market_data
    await running_params(opt.redis, s, "ETH/BTC")  # GET the strategy's state
    await opt.redis.set(channels.OPTIMIZER_SCHEDULE_KEY, now_ns(), nx=True)
    await opt.enqueue_scheduled(now_ns(), 10**12)  # XINFO, GET cursor, XADD requests, SET
    await opt.bus.publish(channels.OPTIMIZER_PROPOSALS, ParamsProposed(
        source="optimizer", run_id="r1", symbol="ETH/BTC", strategy="sma_cross", params={},
        current_strategy="sma_cross", current_params={}, objective="sharpe", score=1.0,
        baseline=0.5, margin=0.1))
    for ch in (channels.RETRAIN_STATUS, channels.MODEL_METRICS):
        await opt.bus.publish(ch, ReplayFinished(source="optimizer", bars=1, last_seq=1))
    await opt.redis.aclose()


ROLE_DRILLS = {"market_data": _market_data, "strategy": _strategy, "compliance": _compliance,
               "risk": _risk, "execution": _execution, "optimizer": _optimizer}


@pytest.mark.parametrize("role", AGENT_ROLES)
def test_each_role_can_do_what_its_agent_does(
    role: str, acl_server: RedisServer, urls: dict[str, str], tmp_path: Path
) -> None:
    s = _settings(tmp_path, urls[role])
    _run(_seed, urls[ADMIN], s)
    _run(ROLE_DRILLS[role], urls[role], s)
    assert _acl_log(acl_server) == []


def test_orchestrator_can_run_the_control_plane(
    acl_server: RedisServer, urls: dict[str, str], tmp_path: Path
) -> None:
    s = _settings(tmp_path, urls[ORCHESTRATOR])

    async def go() -> None:
        r = redis.asyncio.Redis.from_url(urls[ORCHESTRATOR])
        store = Store(make_engine(f"sqlite:///{tmp_path / 'o.db'}"))
        await r.flushdb()  # tradingmesh run --reset
        await _seed(urls[ADMIN], s)
        assert await pipeline_caught_up(r, topology.consumer_groups(s)) is False
        res = await killswitch.emergency_stop(r, store, reason="drill", actor="test", wait_s=0.1)
        assert res.halted and not res.confirmed
        await killswitch.sync_halt_latch(r, store)
        await killswitch.reset_halt(r, store, reason="drill over", actor="test")
        await killswitch.sync_halt_latch(r, store)
        for stream in channels.ORDER_PATH_STREAMS:  # the supervisor's safe trimming
            await trim_consumed(r, stream, 1)
        await r.sadd(channels.PARKED_AGENTS_KEY, "risk")
        await r.delete(channels.PARKED_AGENTS_KEY)
        assert [k async for k in r.scan_iter(match=channels.HEALTH_KEY_PREFIX + "*")] == []
        for name in ("config", "shutdown", "acl"):
            with pytest.raises(NOPERM):
                await r.execute_command(name.upper(), *({"config": ["GET", "bind"],
                                                         "acl": ["LIST"]}.get(name, [])))
        store.close()
        await r.aclose()

    _run(go)
    assert [d[0] for d in _denials(acl_server)] == [ORCHESTRATOR] * 3  # the three drills


# ---------------------------------------------------------------------- forbidden
@pytest.mark.parametrize(("role", "command"), [
    ("strategy", ("XADD", channels.ORDERS, "*", "data", "{}")),
    ("strategy", ("XADD", channels.SIGNALS_APPROVED, "*", "data", "{}")),
    ("strategy", ("XADD", channels.MARKET_DATA, "*", "data", "{}")),
    ("strategy", ("PUBLISH", channels.ORDERS, "{}")),
    ("compliance", ("XADD", channels.ORDERS, "*", "data", "{}")),
    ("compliance", ("XADD", channels.TRADING_EVENTS, "*", "data", "{}")),
    ("risk", ("SET", channels.PAPER_VENUE_KEY, "{}")),
    ("risk", ("XADD", channels.TRADING_EVENTS, "*", "data", "{}")),
    ("market_data", ("XADD", channels.ORDERS, "*", "data", "{}")),
    ("market_data", ("SET", channels.HALT_KEY, "{}")),
    ("execution", ("XADD", channels.ORDERS, "*", "data", "{}")),
    ("execution", ("DEL", channels.HALT_KEY)),
    ("optimizer", ("SET", channels.state_key("strategy:ETHBTC"), "{}")),
    ("optimizer", ("XADD", channels.STRATEGY_PARAMS, "*", "data", "{}")),
    ("compliance", ("SET", channels.health_key("risk"), "{}")),
    ("risk", ("FLUSHDB",)),
    ("execution", ("KEYS", "*")),
])
def test_forbidden_writes_get_noperm(
    role: str, command: tuple[str, ...], acl_server: RedisServer, urls: dict[str, str]
) -> None:
    with redis.Redis.from_url(urls[role]) as r:
        with pytest.raises(NOPERM):
            r.execute_command(*command)
        with pytest.raises((NOPERM, redis.exceptions.ExecAbortError)):  # and in MULTI/EXEC
            pipe = r.pipeline(transaction=True)
            pipe.execute_command(*command)
            pipe.execute()
    with acl_server.client() as admin:  # nothing was written
        assert admin.dbsize() == 0
    assert {d[0] for d in _denials(acl_server)} == {role}


def test_only_execution_writes_the_venue_book_only_market_data_the_bars(
    acl_server: RedisServer, urls: dict[str, str]
) -> None:
    for role in AGENT_ROLES:
        with redis.Redis.from_url(urls[role]) as r:
            for key, allowed in ((channels.PAPER_VENUE_KEY, "execution"),
                                 (channels.MARKET_DATA, "market_data")):
                if role == allowed:
                    continue
                with pytest.raises(NOPERM):
                    if key == channels.MARKET_DATA:
                        r.xadd(key, {"data": "{}"})
                    else:
                        r.set(key, "{}")
    with redis.Redis.from_url(urls["execution"]) as r:
        r.set(channels.PAPER_VENUE_KEY, "{}")
    with redis.Redis.from_url(urls["market_data"]) as r:
        r.xadd(channels.MARKET_DATA, {"data": "{}"})


def test_dashboard_reads_and_subscribes_but_writes_nothing(
    acl_server: RedisServer, urls: dict[str, str], tmp_path: Path
) -> None:
    _run(_seed, urls[ADMIN], _settings(tmp_path, urls[ADMIN]))
    with redis.Redis.from_url(urls[DASHBOARD]) as d, redis.Redis.from_url(urls["risk"]) as risk:
        assert len(d.xrange(channels.MARKET_DATA)) == 4  # 3 bars + 1 other message
        assert d.xinfo_groups(channels.MARKET_DATA) == []
        assert d.hgetall(STATS_KEY)
        assert list(d.scan_iter(match="market_data*"))
        assert d.xread({channels.ORDERS: "0"}, count=1)
        ps = d.pubsub()
        ps.psubscribe("*")
        ps.subscribe(channels.ORDERS)
        eventually(lambda: ps.get_message(timeout=0.2) is None, 5)  # drain the confirmations
        risk.publish(channels.ORDERS, b"live")

        def got() -> list:
            msg = ps.get_message(timeout=0.5)
            return [msg] if msg and msg["data"] == b"live" else []

        eventually(got, 5, message="dashboard receives pub/sub traffic")
        ps.close()
        denied = [("SET", "x", "1"), ("XADD", channels.ORDERS, "*", "data", "{}"),
                  ("PUBLISH", channels.ORDERS, "{}"), ("DEL", channels.MARKET_DATA),
                  ("HINCRBY", STATS_KEY, channels.ORDERS, "1"),
                  ("XGROUP", "CREATE", channels.ORDERS, "spy", "0"),
                  ("XREADGROUP", "GROUP", "execution", "spy", "STREAMS", channels.ORDERS, ">"),
                  ("XACK", channels.ORDERS, "execution", "0-1"), ("EXPIRE", "x", "1"),
                  ("FLUSHDB",), ("KEYS", "*"), ("CONFIG", "GET", "bind"), ("EVAL", "return 1", "0")]
        for cmd in denied:
            with pytest.raises(NOPERM):
                d.execute_command(*cmd)
    assert {d[0] for d in _denials(acl_server)} == {DASHBOARD}


# ---------------------------------------------------------------------- authentication
def test_unauthenticated_default_and_wrong_password_are_refused(
    acl_server: RedisServer, urls: dict[str, str], creds: dict[str, SecretStr]
) -> None:
    host, port = acl_server.host, acl_server.port
    refused = (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)
    once = {"retry": Retry(NoBackoff(), 0)}  # an auth failure is final: no retries
    with (redis.Redis(host=host, port=port, protocol=2, **once) as anon,
          pytest.raises(refused, match="NOAUTH|Authentication required")):
        anon.ping()
    with socket.create_connection((host, port), timeout=5) as sock:  # raw RESP
        sock.sendall(b"PING\r\n")
        assert sock.recv(200).startswith(b"-NOAUTH")
    for user, password in (("default", ""), ("default", "x"),
                           ("risk", creds[ORCHESTRATOR].get_secret_value()),
                           ("risk", "wrong"), ("nobody", "x")):
        with (redis.Redis(host=host, port=port, username=user, password=password, **once) as c,
              pytest.raises(redis.exceptions.AuthenticationError)):
            c.ping()
    with redis.Redis.from_url(urls["risk"]) as ok:
        assert ok.ping()


def test_loopback_only_protected_mode_hashed_acl(
    acl_server: RedisServer, creds: dict[str, SecretStr]
) -> None:
    with acl_server.client() as admin:
        assert admin.config_get("bind") == {"bind": "127.0.0.1"}
        assert admin.config_get("protected-mode") == {"protected-mode": "yes"}
        assert admin.config_get("requirepass") == {"requirepass": ""}
        listing = "\n".join(admin.acl_list())
    listening = {c.laddr.ip for c in psutil.Process(acl_server.pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN}
    assert listening == {"127.0.0.1"}
    default = next(ln for ln in listing.splitlines() if ln.startswith("user default "))
    assert " on #" in default and "nopass" not in default  # admin's password, never open
    acl_text = acl_server.acl_file.read_text()  # type: ignore[union-attr]
    cmdline = " ".join(psutil.Process(acl_server.pid).cmdline())
    for pw in creds.values():
        for text in (listing, acl_text, cmdline, acl_server.log_path.read_text()):
            assert pw.get_secret_value() not in text
    assert stat.S_IMODE(acl_server.acl_file.stat().st_mode) == 0o600  # type: ignore[union-attr]
