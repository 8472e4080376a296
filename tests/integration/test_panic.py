"""``tradingmesh panic`` (issue 15): halt, cancel and flatten without Redis or any agent.

Against the exchange simulator through real ccxt (Redis down: straight to the venue,
checked against the exchange's own orders, trades and balances) and the paper venue (Redis
up, no agent: the failsafe path; Redis down: nothing to do but the database latch), plus
the running-agent case (the kill-switch command, never a second trader).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from agents.execution_records import BASELINE_STATE, record_event
from backend import channels
from backend.bus import DATA_FIELD
from backend.exchange_sim import TEST_KEY, TEST_SECRET, ExchangeSim
from backend.mesh.halt import HALT_STATE, parse_halt
from backend.mesh.lease import Lease
from backend.messages import CancelAllOrders, OrderStatus, Side, SubmitOrder, decode, now_ns
from backend.persistence import Store, make_engine
from backend.settings import Settings
from backend.venues.paper.adapter import PaperVenue
from orchestrator.panic import panic
from tests.support.helpers import need_redis_server

ROOT = Path(__file__).resolve().parents[2]
SYMS = ["ETH/BTC", "LTC/BTC"]
KEY_ENV, SECRET_ENV = "TEST_PANIC_KEY", "TEST_PANIC_SECRET"


def dead_redis_url() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def ccxt_settings(tmp_path: Path, sim: ExchangeSim, **venue: Any) -> Settings:
    return Settings(
        var_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'mesh.db'}", symbols=SYMS,
        redis_url=dead_redis_url(),
        venue={"kind": "ccxt", "submit_timeout_s": 3.0, "resolve_backoff_s": 0.1,
               "unknown_margin_s": 0.3, "unknown_window_s": 1.0, "resolve_attempts": 3,
               "ccxt": {"urls": sim.ccxt_urls(), "rate_limit_ms": 1, "timeout_ms": 2000,
                        "api_key_env": KEY_ENV, "secret_env": SECRET_ENV,
                        "options": {"recvWindow": 1000}}, **venue})


def total(sim: ExchangeSim, asset: str) -> Decimal:
    free, used = sim.book.balances().get(asset, (Decimal(0), Decimal(0)))
    return free + used


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    monkeypatch.setenv(SECRET_ENV, TEST_SECRET)


def seed_mesh_orders(store: Store, sim: ExchangeSim) -> None:
    """What a mesh that crashed with Redis would leave: buys filled at the exchange, one
    of them UNKNOWN in the database (sent, answer lost), another UNKNOWN that never
    landed, and a resting order of the mesh's; plus the trader's own order and coins."""
    sim.manual_trade("ETH/BTC", "BUY", "1.0", client_order_id="tm-o-eth")
    sim.manual_trade("LTC/BTC", "BUY", "2.0", client_order_id="tm-o-ltc")
    sim.manual_trade("ETH/BTC", "BUY", "0.3", client_order_id="tm-o-late")
    sim.add_order("ETH/BTC", "SELL", "0.5", "0.2", client_order_id="tm-s-stop")
    sim.add_order("ETH/BTC", "BUY", "0.1", "0.001")  # the trader's own resting order
    sent = now_ns()
    for coid, sym, qty in (("tm-o-late", "ETH/BTC", 0.3), ("tm-o-lost", "ETH/BTC", 0.2)):
        store.record_order_intent(SubmitOrder(
            source="risk", client_order_id=coid, symbol=sym, side=Side.BUY, quantity=qty,
            signal_id=coid, bar_seq=1))
        store.mark_order_sent(coid, sent)
        store.update_order_status(coid, OrderStatus.UNKNOWN, None, "answer lost")


def test_panic_with_redis_down_goes_to_the_exchange_and_closes_only_the_mesh_s_part(
        tmp_path: Path) -> None:
    with ExchangeSim(symbols=SYMS, fee_asset="base", dup_scope="open",
                     balances={"BTC": "5", "ETH": "0.5"}) as sim:
        s = ccxt_settings(tmp_path, sim)
        store = Store(make_engine(s.db_url()))
        # the trader held 0.5 ETH before the mesh traded (kept durable by execution)
        store.put_state(BASELINE_STATE + "ccxt:binance",
                        {"positions": {"ETH/BTC": 0.5}, "ts": 1})
        seed_mesh_orders(store, sim)
        trader_orders = [o.client_order_id for o in sim.book.open_orders()
                         if not o.client_order_id.startswith("tm-")]

        report = asyncio.run(panic(s, reason="redis is gone", redis_url=s.redis_url))

        assert report.path == "venue" and report.error == ""
        assert report.flat, report
        assert report.cancelled == ["tm-s-stop"]
        assert len(report.flattened) == 2 and all(c.startswith("tm-k-")
                                                  for c in report.flattened)
        # the exchange's own records: the mesh's coins sold, the trader's kept
        eth, ltc = (sim.book.market(m).step for m in ("ETHBTC", "LTCBTC"))
        assert total(sim, "ETH") - Decimal("0.5") < eth  # only dust below a step left
        assert total(sim, "ETH") >= Decimal("0.5") - eth
        assert total(sim, "LTC") < ltc
        coids = {o.order_id: o.client_order_id for o in sim.orders()}
        closes = [t for t in sim.trades() if coids[t.order_id] in report.flattened]
        assert sorted(t.side for t in closes) == ["SELL", "SELL"]
        assert [o.client_order_id for o in sim.book.open_orders()] == trader_orders
        # the database: halted first, the late order adopted, the lost one settled
        assert parse_halt(json.dumps(store.get_state(HALT_STATE))).kind == "kill_switch"
        assert store.get_order("tm-o-late")["status"] == "FILLED"
        assert store.get_order("tm-o-lost")["status"] == "REJECTED"
        for coid in report.flattened:
            row = store.get_order(coid)
            assert row["status"] == "FILLED" and row["sent_ts"] is not None
        assert [r["decision"] for r in store.audit(action="panic")] == ["halted"]
        assert [r["decision"] for r in store.audit(action="panic_result")] == ["flat"]

        # a second panic finds nothing left: nothing sent twice
        trades_before = len(sim.trades())
        again = asyncio.run(panic(s, reason="again", redis_url=s.redis_url))
        assert again.flat and again.cancelled == [] and again.flattened == []
        assert len(sim.trades()) == trades_before
        store.close()


def test_panic_without_a_baseline_closes_nothing_unless_told_the_whole_account(
        tmp_path: Path) -> None:
    with ExchangeSim(symbols=SYMS, fee_asset="quote", balances={"BTC": "5", "ETH": "0.5"}) \
            as sim:
        s = ccxt_settings(tmp_path, sim)
        sim.manual_trade("ETH/BTC", "BUY", "1.0", client_order_id="tm-o-eth")
        report = asyncio.run(panic(s, reason="no baseline", redis_url=s.redis_url))
        assert report.flattened == [] and not report.flat
        assert "no baseline" in report.notes[0]
        assert report.positions_left == {"ETH/BTC": pytest.approx(1.5)}
        assert total(sim, "ETH") == Decimal("1.5")

        report = asyncio.run(panic(s, reason="all of it", redis_url=s.redis_url,
                                   scope="account"))
        assert report.flat and len(report.flattened) == 1
        assert total(sim, "ETH") == 0


def test_panic_cli_with_redis_down(tmp_path: Path) -> None:
    """The command line, as an operator would run it: exit code, report on stdout."""
    with ExchangeSim(symbols=SYMS, fee_asset="quote", balances={"BTC": "5"}) as sim:
        s = ccxt_settings(tmp_path, sim)
        store = Store(make_engine(s.db_url()))
        store.put_state(BASELINE_STATE + "ccxt:binance", {"positions": {}, "ts": 1})
        store.close()
        sim.manual_trade("LTC/BTC", "BUY", "3.0", client_order_id="tm-o-ltc")
        env = {"TRADINGMESH_VAR_DIR": str(tmp_path), "TRADINGMESH_DATABASE_URL": s.database_url,
               "TRADINGMESH_SYMBOLS": json.dumps(SYMS), "REDIS_URL": s.redis_url,
               "TRADINGMESH_VENUE": s.venue.model_dump_json(),
               KEY_ENV: TEST_KEY, SECRET_ENV: TEST_SECRET, "PATH": "/usr/bin:/bin"}
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "panic", "--reason", "drill"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert report["path"] == "venue" and len(report["flattened"]) == 1
        assert total(sim, "LTC") == 0
        assert TEST_SECRET not in proc.stdout + proc.stderr


# ---------------------------------------------------------------------- paper venue
def paper_settings(tmp_path: Path, url: str) -> Settings:
    return Settings(var_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'mesh.db'}",
                    symbols=["ETH/BTC"], redis_url=url)


async def paper_with_a_position(s: Settings, store: Store) -> None:
    """A paper book holding ETH and resting one more entry (no agent running)."""
    from backend.bus import Bus
    from backend.marketdata.candles import load_dir
    from backend.mesh.pipeline import bar_message

    r = redis.asyncio.Redis.from_url(s.redis_url)
    venue = PaperVenue(r, s.paper)
    await venue.load()
    candles = load_dir(s.data_dir, s.symbols)["ETH/BTC"]
    events = []
    for i, coid in ((0, "tm-o-1"), (1, "tm-o-2")):
        order = SubmitOrder(source="risk", client_order_id=coid, symbol="ETH/BTC",
                            side=Side.BUY, quantity=1.0, signal_id=coid, bar_seq=i + 1)
        store.record_order_intent(order)
        events.append(await venue.submit(order, now_ns()))
        if i == 0:
            events += await venue.on_bar(bar_message(candles, 1, 2, "5m"))
    bus = Bus(r, "execution")
    pipe = r.pipeline(transaction=True)
    for ev in events:
        bus.stage(pipe, channels.TRADING_EVENTS, ev)
    venue.stage(pipe)
    await pipe.execute()
    venue.commit()
    for ev in events:
        await record_event(store, venue, ev)
    assert await venue.positions() == {"ETH/BTC": 1.0}
    assert await venue.open_orders() == ["tm-o-2"]
    await r.aclose()


def test_panic_on_the_paper_venue_with_redis_up_and_no_agent(tmp_path: Path,
                                                             redis_url: str) -> None:
    need_redis_server()
    s = paper_settings(tmp_path, redis_url)
    store = Store(make_engine(s.db_url()))
    asyncio.run(paper_with_a_position(s, store))

    report = asyncio.run(panic(s, reason="paper panic", redis_url=redis_url))
    assert report.path == "failsafe" and report.flat, report
    assert report.cancelled == ["tm-o-2"] and len(report.flattened) == 1

    async def book() -> tuple[dict[str, float], list[str]]:
        r = redis.asyncio.Redis.from_url(redis_url)
        venue = PaperVenue(r, s.paper)
        await venue.load()
        try:
            return await venue.positions(), await venue.open_orders()
        finally:
            await r.aclose()

    assert asyncio.run(book()) == ({}, [])  # the book in Redis, as execution will load it
    with redis.Redis.from_url(redis_url) as c:
        assert parse_halt(c.get(channels.HALT_KEY)).kind == "kill_switch"
        types = [decode(f[DATA_FIELD]).type for _i, f in c.xrange(channels.TRADING_EVENTS)]
    assert types.count("order_cancelled") == 1 and "order_filled" in types
    assert store.get_state(HALT_STATE)["kind"] == "kill_switch"
    assert [r["decision"] for r in store.audit(action="panic_result")] == ["flat"]
    store.close()


def test_panic_on_the_paper_venue_with_redis_down_only_latches(tmp_path: Path) -> None:
    s = paper_settings(tmp_path, dead_redis_url())
    report = asyncio.run(panic(s, reason="nothing answers", redis_url=s.redis_url,
                               redis_timeout_s=0.5))
    assert report.path == "none" and report.latched
    assert "lives in Redis" in report.notes[0]
    store = Store(make_engine(s.db_url()))
    assert store.get_state(HALT_STATE)["kind"] == "kill_switch"
    assert [r["decision"] for r in store.audit(action="panic")] == ["halted"]
    store.close()


def test_panic_with_a_running_execution_agent_queues_the_kill_switch(
        tmp_path: Path, redis_url: str) -> None:
    """Two processes never trade one account: with execution alive (its lease held),
    panic hands it the durable kill-switch command instead of trading beside it."""
    need_redis_server()
    s = paper_settings(tmp_path, redis_url)

    async def go() -> Any:
        r = redis.asyncio.Redis.from_url(redis_url)
        lease = Lease(r, "execution", 30.0)
        assert await lease.try_acquire()
        try:
            return await panic(s, reason="with agent", redis_url=redis_url, wait_s=0.2)
        finally:
            await lease.release()
            await r.aclose()

    report = go_report = asyncio.run(go())
    assert go_report.path == "kill_switch" and not report.flat
    assert "did not confirm" in report.error
    with redis.Redis.from_url(redis_url) as c:
        cmds = [decode(f[DATA_FIELD]) for _i, f in c.xrange(channels.ORDERS)]
    assert [type(c) for c in cmds] == [CancelAllOrders] and cmds[0].flatten
    assert cmds[0].id == report.command_id
