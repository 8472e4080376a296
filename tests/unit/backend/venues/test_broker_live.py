"""The MT5 and IB clients, over their fakes, through ``LiveVenue`` and the execution agent.

Each test runs for both brokers (:class:`Rig` hides the broker-specific moves): a
submit / fill / flatten cycle through ``LiveVenue`` and through the in-process execution
agent, and the four reconciliation scenarios of a restart -- a fill missed while the
agent was down, an external order, an order in flight when the agent died (timeout), a
position changed behind the agent's back.  "Down" means the agent's broker connection is
closed (as a kill would) while the broker's state (the fake terminal / TWS) lives on.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.execution import ExecutionAgent
from backend import channels
from backend.bus import DATA_FIELD, Bus
from backend.messages import (
    BarClosed,
    CancelAllOrders,
    ExitReason,
    OrderAccepted,
    OrderFilled,
    OrderStatus,
    PositionChanged,
    Side,
    SubmitOrder,
    client_order_id_for,
    decode,
    now_ns,
)
from backend.persistence import Store, make_engine
from backend.venues.broker import BrokerClient, VenueOrder
from backend.venues.config import IbkrConfig, Mt5Config, VenueConfig
from backend.venues.factory import VenueConfigError, make_client
from backend.venues.ib.client import IbClient
from backend.venues.ledger import Accounting, is_protective
from backend.venues.live import LiveVenue
from backend.venues.mt5.client import Mt5Client
from tests.fakes.ib import KNOWN, FakeIB, FakeTws
from tests.fakes.mt5 import FakeMt5
from tests.support.agent_fixtures import drain, settings_for, wire
from tests.support.helpers import aeventually

PW_ENV = "TM_TEST_MT5_PASSWORD"


async def no_wait(delay: float) -> None:
    await asyncio.sleep(0)


@dataclass
class Rig:
    """One broker behind its fake, and the moves the scenarios need."""

    kind: str
    symbols: list[str]
    sym: str  # the symbol traded
    qty: float  # an order's quantity, base units
    client: Callable[[], BrokerClient]  # a new client on the same broker (a new process)
    hold_next: Callable[[], None]  # the next order stays working (MT5: half filled)
    fill_held: Callable[[str], None]  # the broker fills the rest of that order
    external_order: Callable[[], str]  # a working order placed by hand; its ext- id
    trade_by_hand: Callable[[], float]  # a filled trade by hand; its signed quantity
    count: Callable[[str], int]  # orders with this client order id at the broker
    position: Callable[[], float]  # the broker's net position in ``sym``


def mt5_rig() -> Rig:
    fake = FakeMt5()
    cfg = Mt5Config(login=fake.login_id, server=fake.server, password_env=PW_ENV,
                    filling="return", reconnect_backoff_s=0)

    def ticket(coid: str) -> int:
        return next(t for t, o in fake.orders.items() if o.comment == coid)

    return Rig(
        kind="mt5", symbols=["EUR/USD", "GBP/USD"], sym="EUR/USD", qty=20_000,
        client=lambda: Mt5Client(cfg, ["EUR/USD", "GBP/USD"], module=fake),
        hold_next=lambda: fake.script("partial", fraction=0.5),
        fill_held=lambda coid: fake.fill_rest(ticket(coid)),
        external_order=lambda: f"ext-{fake.add_external_order('EURUSD', 0, 0.3, 1.05)}",
        trade_by_hand=lambda: (fake.manual_deal("EURUSD", 1, 0.05), -5_000.0)[1],
        count=lambda coid: sum(o.comment == coid for o in fake.orders.values()),
        position=lambda: sum(p[1] for p in fake.positions.values() if p[0] == "EURUSD") * 1e5,
    )


def ib_rig() -> Rig:
    tws = FakeTws()
    cfg = IbkrConfig(timeout_s=2.0, reconnect_backoff_s=0.01)
    aapl = KNOWN[("STK", "AAPL", "USD")]
    return Rig(
        kind="ibkr", symbols=["AAPL/USD", "MSFT/USD"], sym="AAPL/USD", qty=10,
        client=lambda: IbClient(cfg, ["AAPL/USD", "MSFT/USD"], ib=FakeIB(tws), sleep=no_wait),
        hold_next=lambda: tws.script("hold"),
        fill_held=lambda coid: tws.fill(coid),
        external_order=lambda: f"ext-{tws.add_manual_order(aapl, 'BUY', 5, 180.0)}",
        trade_by_hand=lambda: (tws.manual_fill(aapl, "SELL", 3), -3.0)[1],
        count=lambda coid: len(tws.by_ref(coid)),
        position=lambda: sum(q for c, q, _ in tws.positions.values() if c.conId == aapl),
    )


@pytest.fixture(params=["mt5", "ibkr"])
def rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Rig:
    monkeypatch.setenv(PW_ENV, "s3cret")
    return mt5_rig() if request.param == "mt5" else ib_rig()


def submit(rig: Rig, n: int, side: Side = Side.BUY) -> SubmitOrder:
    sig = f"sig-{rig.kind}-{n}"
    return SubmitOrder(source="risk", correlation_id=sig, client_order_id=client_order_id_for(sig),
                       symbol=rig.sym, side=side, quantity=rig.qty, signal_id=sig, bar_seq=n)


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


# -- LiveVenue -----------------------------------------------------------------------------
def test_submit_fill_flatten_through_live_venue(rig: Rig, fake_redis) -> None:
    async def go() -> None:
        venue = LiveVenue(rig.client(), fake_redis, symbols=rig.symbols, quote_currency="USD",
                          accounting="margin" if rig.kind == "mt5" else "spot")
        await venue.load()
        order = submit(rig, 1)
        (ack,) = await venue.place(order, now_ns())
        assert isinstance(ack, OrderAccepted) and ack.client_order_id == order.client_order_id
        fill, pos = await venue.poll(now_ns())
        assert isinstance(fill, OrderFilled) and fill.quantity == pytest.approx(rig.qty)
        assert fill.correlation_id == order.correlation_id and fill.fee > 0
        assert isinstance(pos, PositionChanged) and pos.quantity == pytest.approx(rig.qty)
        pipe = fake_redis.pipeline(transaction=True)
        venue.stage(pipe)
        await pipe.execute()
        venue.commit()
        events = await venue.flatten(now_ns(), "kill-1")
        closes = [e for e in events if isinstance(e, OrderFilled)]
        assert [(e.side, e.quantity) for e in closes] == [(Side.SELL, pytest.approx(rig.qty))]
        assert await venue.positions() == {} and rig.position() == pytest.approx(0)
        again = await venue.flatten(now_ns(), "kill-1")  # handled twice: nothing sent twice
        assert not [e for e in again if isinstance(e, OrderFilled)]
        assert rig.count(closes[0].client_order_id) == 1
        await venue.close()

    run(go())


# -- protective stops resting at the broker -------------------------------------------------
async def _final(client: BrokerClient, coid: str, symbol: str) -> VenueOrder | None:
    o = await client.fetch_order(coid, symbol)
    return o if o is not None and o.final else None


async def protected_cycle(client: BrokerClient, redis, *, symbols: list[str],  # noqa: ANN001
                          accounting: Accounting, qty: float, stop_loss: float,
                          resting: Callable[[], list[tuple[str, float, float]]],
                          cross: Callable[[], None], held: Callable[[], float]) -> None:
    """Entry with a stop loss -> a ``tm-p-`` stop rests at the broker; the price moves
    through it -> the broker closes the position, the next poll reports the fill as a
    stop-loss exit and the ledger is flat.  ``resting()``: the broker's working
    protective stops as ``(client order id, stop price, quantity in base units)``."""
    sym = symbols[0]
    venue = LiveVenue(client, redis, symbols=symbols, quote_currency="USD",
                      accounting=accounting)
    await venue.load()
    sig = f"sig-protect-{client.name}"
    order = SubmitOrder(source="risk", correlation_id=sig, client_order_id=client_order_id_for(sig),
                        symbol=sym, side=Side.BUY, quantity=qty, stop_loss=stop_loss,
                        signal_id=sig, bar_seq=1)
    (ack,) = await venue.place(order, now_ns())
    assert isinstance(ack, OrderAccepted)
    events = await venue.poll(now_ns())
    assert [e.quantity for e in events if isinstance(e, OrderFilled)] == [pytest.approx(qty)]
    (stop_ack,) = [e for e in events if isinstance(e, OrderAccepted)]
    stop_coid = stop_ack.client_order_id
    assert is_protective(stop_coid) and stop_ack.side is Side.SELL
    assert resting() == [(stop_coid, pytest.approx(stop_loss), pytest.approx(qty))]
    pipe = redis.pipeline(transaction=True)
    venue.stage(pipe)
    await pipe.execute()
    venue.commit()
    # nobody polls now (the execution agent is down): the broker's stop protects
    cross()
    assert held() == pytest.approx(0) and resting() == []
    done = await aeventually(lambda: _final(client, stop_coid, sym))
    assert done.status is OrderStatus.FILLED
    fills = [e for e in await venue.poll(now_ns()) if isinstance(e, OrderFilled)]
    assert [(f.client_order_id, f.side, f.exit_reason) for f in fills] == [
        (stop_coid, Side.SELL, ExitReason.STOP_LOSS)]
    assert fills[0].quantity == pytest.approx(qty) and fills[0].correlation_id == sig
    assert venue.book_positions() == {} and await venue.positions() == {}
    await venue.close()


def test_protective_stop_rests_at_mt5_and_closes_the_position(
        fake_redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PW_ENV, "s3cret")
    fake = FakeMt5()
    cfg = Mt5Config(login=fake.login_id, server=fake.server, password_env=PW_ENV,
                    reconnect_backoff_s=0)

    def resting() -> list[tuple[str, float, float]]:
        return [(o.comment, o.price, o.volume * 1e5) for o in fake.orders.values()
                if o.state == fake.ORDER_STATE_PLACED and o.type == fake.ORDER_TYPE_SELL_STOP]

    run(protected_cycle(
        Mt5Client(cfg, ["EUR/USD", "GBP/USD"], module=fake), fake_redis,
        symbols=["EUR/USD", "GBP/USD"], accounting="margin", qty=20_000, stop_loss=1.095,
        resting=resting, cross=lambda: fake.set_tick("EURUSD", 1.0948, 1.0949),
        held=lambda: sum(p[1] for p in fake.positions.values() if p[0] == "EURUSD")))
    assert fake.deals[-1].price == pytest.approx(1.0948)  # the stop's deal, at the bid


def test_protective_stop_rests_at_ib_and_closes_the_position(fake_redis) -> None:
    tws = FakeTws()
    aapl = KNOWN[("STK", "AAPL", "USD")]
    cfg = IbkrConfig(timeout_s=2.0, reconnect_backoff_s=0.01)

    def resting() -> list[tuple[str, float, float]]:
        return [(o.order.orderRef, o.order.auxPrice, o.order.totalQuantity)
                for o in tws.orders.values()
                if o.order.orderType == "STP" and o.status == "PreSubmitted"]

    run(protected_cycle(
        IbClient(cfg, ["AAPL/USD", "MSFT/USD"], ib=FakeIB(tws), sleep=no_wait), fake_redis,
        symbols=["AAPL/USD", "MSFT/USD"], accounting="spot", qty=10, stop_loss=185.0,
        resting=resting, cross=lambda: tws.move_price(aapl, 184.0),
        held=lambda: sum(q for c, q, _ in tws.positions.values() if c.conId == aapl)))
    assert tws.fills[-1].execution.price == pytest.approx(184.0)


# -- the execution agent -------------------------------------------------------------------
async def start(rig: Rig, tmp_path: Path, redis) -> tuple[ExecutionAgent, Store]:  # noqa: ANN001
    """An execution agent (in process, fakeredis) on a new client of the rig's broker."""
    venue = VenueConfig(kind=rig.kind, quote_currency="USD", resolve_backoff_s=0.01,
                        submit_timeout_s=5.0)
    settings = settings_for(tmp_path, symbols=rig.symbols, venue=venue)
    agent = ExecutionAgent(settings, client=rig.client())
    await wire(agent, redis)
    await agent.setup()
    return agent, Store(make_engine(settings.db_url()))


async def send(redis, msg: SubmitOrder | CancelAllOrders) -> None:  # noqa: ANN001
    pipe = redis.pipeline(transaction=True)
    Bus(redis, "risk").stage(pipe, channels.ORDERS, msg)
    await pipe.execute()


async def down(agent: ExecutionAgent) -> None:
    """The agent dies: its broker connection goes with it."""
    assert agent.venue is not None
    await agent.venue.close()


def test_submit_fill_flatten_through_the_agent(rig: Rig, tmp_path: Path, fake_redis) -> None:
    async def go() -> Store:
        agent, store = await start(rig, tmp_path, fake_redis)
        order = submit(rig, 1)
        await send(fake_redis, order)
        await drain(agent)
        await agent.poll_once()
        row = store.get_order(order.client_order_id)
        assert row["status"] == OrderStatus.FILLED.value
        assert [f["quantity"] for f in store.order_fills(order.client_order_id)] == [
            pytest.approx(rig.qty)]
        await send(fake_redis, CancelAllOrders(source="orchestrator", reason="test",
                                               flatten=True))
        await drain(agent)
        await down(agent)
        return store

    store = run(go())
    assert rig.position() == pytest.approx(0)
    assert {r["symbol"]: r["quantity"] for r in store.positions()}.get(rig.sym, 0) == 0


def test_reconcile_fill_missed_while_down(rig: Rig, tmp_path: Path, fake_redis) -> None:
    async def go() -> Store:
        agent, store = await start(rig, tmp_path, fake_redis)
        order = submit(rig, 1)
        rig.hold_next()
        await send(fake_redis, order)
        await drain(agent)
        await agent.poll_once()
        assert store.get_order(order.client_order_id)["status"] in (
            OrderStatus.ACCEPTED.value, OrderStatus.PARTIALLY_FILLED.value)
        await down(agent)
        rig.fill_held(order.client_order_id)  # fills while nobody listens
        again, _ = await start(rig, tmp_path, fake_redis)
        assert again._reconciled
        row = store.get_order(order.client_order_id)
        assert row["status"] == OrderStatus.FILLED.value
        fills = store.order_fills(order.client_order_id)
        assert sum(f["quantity"] for f in fills) == pytest.approx(rig.qty)
        assert store.audit(action="reconcile_fill")
        await down(again)
        return store

    store = run(go())
    assert {r["symbol"]: r["quantity"] for r in store.positions()}[rig.sym] == pytest.approx(
        rig.position())


def test_reconcile_adopts_an_external_order(rig: Rig, tmp_path: Path, fake_redis) -> None:
    async def go() -> None:
        agent, store = await start(rig, tmp_path, fake_redis)
        await down(agent)
        ext = rig.external_order()
        again, _ = await start(rig, tmp_path, fake_redis)
        row = store.get_order(ext)
        assert row is not None and row["external"] and row["status"] == "ACCEPTED"
        (audit,) = store.audit(action="reconcile_external_order")
        assert audit["subject_id"] == ext
        await down(again)

    run(go())


def test_reconcile_order_in_flight_when_the_agent_died(rig: Rig, tmp_path: Path,
                                                        fake_redis) -> None:
    async def go() -> None:
        agent, store = await start(rig, tmp_path, fake_redis)
        order = submit(rig, 1)
        # The agent persisted the intent, sent the order, and died before the answer.
        store.record_order_intent(order)
        store.update_order_status(order.client_order_id, OrderStatus.UNKNOWN, None, "in flight")
        await agent.venue.client.place_market_order(  # type: ignore[union-attr]
            order.client_order_id, order.symbol, order.side, order.quantity)
        await down(agent)
        again, _ = await start(rig, tmp_path, fake_redis)
        assert store.get_order(order.client_order_id)["status"] == OrderStatus.FILLED.value
        (audit,) = store.audit(action="reconcile_fill")  # the UNKNOWN order's fill
        assert audit["subject_id"] == order.client_order_id
        await send(fake_redis, order)  # the SubmitOrder is delivered again
        await drain(again)
        assert rig.count(order.client_order_id) == 1  # looked up, never sent twice
        await down(again)

    run(go())


def test_reconcile_position_changed_behind_our_back(rig: Rig, tmp_path: Path,
                                                    fake_redis) -> None:
    async def go() -> tuple[Store, float]:
        agent, store = await start(rig, tmp_path, fake_redis)
        await send(fake_redis, submit(rig, 1))
        await drain(agent)
        await agent.poll_once()
        await down(agent)
        moved = rig.trade_by_hand()
        again, _ = await start(rig, tmp_path, fake_redis)
        # the trade by hand is a fill of an external order: applied, nothing to alarm
        ext = [f for f in store.fills() if f["client_order_id"].startswith("ext-")]
        assert [f["quantity"] for f in ext] == [pytest.approx(abs(moved))]
        assert not store.audit(action="venue_alarm")
        await down(again)
        return store, moved

    store, moved = run(go())
    stored = {r["symbol"]: r["quantity"] for r in store.positions()}
    assert stored[rig.sym] == pytest.approx(rig.qty + moved) == pytest.approx(rig.position())


def test_factory_builds_the_clients_or_says_what_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "MetaTrader5", None)  # as on Linux / macOS
    ib = settings_for(tmp_path, symbols=["AAPL/USD"], venue=VenueConfig(kind="ibkr"))
    assert isinstance(make_client(ib), IbClient)
    mt5 = settings_for(tmp_path, symbols=["EUR/USD"], venue=VenueConfig(kind="mt5"))
    with pytest.raises(VenueConfigError, match=r"Windows.*pip install tradingmesh\[mt5\]"):
        make_client(mt5)  # no MetaTrader5 package on this system


def test_a_fill_seen_by_a_poll_is_followed_by_an_intrabar_mark(rig: Rig, tmp_path: Path,
                                                              fake_redis) -> None:
    """Issue 15: the breaker must not wait for the next bar's close to see a fill."""
    async def go() -> list:
        agent, store = await start(rig, tmp_path, fake_redis)
        price = 1.1 if rig.kind == "mt5" else 185.0
        await Bus(fake_redis, "market_data").publish(channels.MARKET_DATA, BarClosed(
            source="test", symbol=rig.sym, open_time=1_700_000_000_000_000_000, open=price,
            high=price, low=price, close=price, volume=1.0, seq=1))
        order = submit(rig, 1)
        rig.hold_next()
        await send(fake_redis, order)
        await drain(agent)
        n_before = await fake_redis.xlen(channels.TRADING_EVENTS)
        rig.fill_held(order.client_order_id)
        await agent.poll_once()
        new = [decode(f[DATA_FIELD]) for _i, f in
               await fake_redis.xrange(channels.TRADING_EVENTS)][n_before:]
        await down(agent)
        store.close()
        return new

    new = run(go())
    kinds = [type(m).__name__ for m in new]
    assert "OrderFilled" in kinds and kinds[-1] == "PortfolioMarked"
    mark = new[-1]
    assert mark.bar_seq == 1
    assert mark.positions[rig.sym].quantity == pytest.approx(rig.qty)  # the fill is in it
