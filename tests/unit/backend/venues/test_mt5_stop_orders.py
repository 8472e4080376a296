"""Mt5Client's pending stop orders (the protective stops of a live venue) against the
fake MetaTrader5 terminal (tests/fakes/mt5.py)."""

from __future__ import annotations

import pytest

from backend.messages import OrderStatus, Side
from backend.venues.broker import StopWouldTrigger, VenueRejected, VenueUnavailable
from tests.fakes.mt5 import FakeMt5
from tests.unit.backend.venues.test_mt5_client import PW_ENV, coid, connected, run


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeMt5:
    monkeypatch.setenv(PW_ENV, "s3cret")
    return FakeMt5()


def test_protective_stop_rests_with_our_id_and_is_found_with_its_price(fake):
    async def go():
        c = await connected(fake)  # filling "ioc" for market deals
        await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 20_000)
        placed = await c.place_stop_order(coid(2), "EUR/USD", Side.SELL, 20_000.4, 1.0950001)
        return (c.supports_stop_orders, placed, await c.fetch_order(coid(2), "EUR/USD"),
                await c.fetch_open_orders(), await c.fetch_positions())

    supports, placed, found, open_, pos = run(go())
    assert supports is True
    req = fake.sent[-1]
    assert req["action"] == fake.TRADE_ACTION_PENDING and req["type"] == fake.ORDER_TYPE_SELL_STOP
    assert req["price"] == 1.095  # rounded to the symbol's 5 digits
    assert req["volume"] == pytest.approx(0.2) and req["symbol"] == "EURUSD"
    assert req["comment"] == coid(2) and req["magic"] == 240_615
    assert req["type_time"] == fake.ORDER_TIME_GTC
    assert req["type_filling"] == fake.ORDER_FILLING_RETURN  # whatever `filling` says
    for o in (placed, found):
        assert o.status is OrderStatus.ACCEPTED and o.stop_price == pytest.approx(1.095)
        assert (o.client_order_id, o.symbol, o.side) == (coid(2), "EUR/USD", Side.SELL)
        assert o.quantity == pytest.approx(20_000) and o.filled == 0 and not o.external
    assert placed.venue_order_id == found.venue_order_id
    (listed,) = open_
    assert listed.client_order_id == coid(2) and listed.stop_price == pytest.approx(1.095)
    assert pos == pytest.approx({"EUR/USD": 20_000})  # resting: nothing traded


def test_triggered_stop_is_a_fill_of_our_id_and_closes_the_position(fake):
    async def go():
        c = await connected(fake)
        await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 20_000)
        await c.place_stop_order(coid(2), "EUR/USD", Side.SELL, 20_000, 1.095)
        fake.set_tick("EURUSD", 1.0951, 1.0952)  # near, not through
        near = await c.fetch_order(coid(2), "EUR/USD"), await c.fetch_positions()
        fake.set_tick("EURUSD", 1.0949, 1.095)  # the bid falls through the stop
        fills = await c.fetch_fills(["EUR/USD"], 0)
        return (near, fills, await c.fetch_positions(), await c.fetch_order(coid(2), "EUR/USD"),
                await c.fetch_open_orders())

    (still, pos_before), fills, pos, done, open_ = run(go())
    assert still.status is OrderStatus.ACCEPTED and pos_before == pytest.approx({"EUR/USD": 20_000})
    entry, stop = fills
    assert entry.client_order_id == coid(1)
    assert (stop.client_order_id, stop.side, stop.symbol) == (coid(2), Side.SELL, "EUR/USD")
    assert stop.quantity == pytest.approx(20_000) and stop.price == pytest.approx(1.0949)
    assert stop.venue_order_id == done.venue_order_id and stop.fee == pytest.approx(7.0 * 0.2)
    assert pos == {} and not fake.positions
    assert done.status is OrderStatus.FILLED and done.avg_price == pytest.approx(1.0949)
    assert done.filled == pytest.approx(20_000) and done.stop_price == pytest.approx(1.095)
    assert open_ == []


def test_buy_stop_protects_a_short_and_triggers_on_the_ask(fake):
    async def go():
        c = await connected(fake)
        await c.place_market_order(coid(1), "GBP/USD", Side.SELL, 10_000)
        placed = await c.place_stop_order(coid(2), "GBP/USD", Side.BUY, 10_000, 1.26)
        fake.set_tick("GBPUSD", 1.2599, 1.26)
        return placed, await c.fetch_fills(["GBP/USD"], 0), await c.fetch_positions()

    placed, fills, pos = run(go())
    assert fake.sent[-1]["type"] == fake.ORDER_TYPE_BUY_STOP
    assert placed.side is Side.BUY and placed.stop_price == pytest.approx(1.26)
    assert [(f.client_order_id, f.side, f.price) for f in fills[1:]] == [
        (coid(2), Side.BUY, pytest.approx(1.26))]
    assert pos == {}


def test_cancel_removes_the_resting_stop(fake):
    async def go():
        c = await connected(fake)
        await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 20_000)
        await c.place_stop_order(coid(2), "EUR/USD", Side.SELL, 20_000, 1.095)
        cancelled = await c.cancel_order(coid(2), "EUR/USD")
        again = await c.cancel_order(coid(2), "EUR/USD")
        fake.set_tick("EURUSD", 1.09, 1.0901)  # through the old stop: nothing trades
        return cancelled, again, await c.fetch_open_orders(), await c.fetch_positions()

    cancelled, again, open_, pos = run(go())
    assert fake.sent[-1]["action"] == fake.TRADE_ACTION_REMOVE
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.filled == 0
    assert cancelled.stop_price == pytest.approx(1.095) and again == cancelled
    assert open_ == [] and pos == pytest.approx({"EUR/USD": 20_000})


def test_cancel_racing_the_trigger_returns_the_filled_stop(fake):
    async def go():
        c = await connected(fake)
        await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 20_000)
        await c.place_stop_order(coid(2), "EUR/USD", Side.SELL, 20_000, 1.095)
        fake.script("triggered")  # the stop fires just before the removal arrives
        return await c.cancel_order(coid(2), "EUR/USD"), await c.fetch_positions()

    final, pos = run(go())
    assert final.status is OrderStatus.FILLED and final.filled == pytest.approx(20_000)
    assert pos == {}


def test_removal_refused_while_the_stop_rests_is_not_a_rejection(fake):
    """VenueRejected would tell the live venue the stop never rested (it would rest a
    second one); the stop still works, so the cancel is to be tried again."""
    async def go():
        c = await connected(fake)
        await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 20_000)
        await c.place_stop_order(coid(2), "EUR/USD", Side.SELL, 20_000, 1.095)
        fake.script("frozen")
        with pytest.raises(VenueUnavailable, match="TRADE_RETCODE_FROZEN.*still working"):
            await c.cancel_order(coid(2), "EUR/USD")
        return await c.fetch_open_orders(), await c.cancel_order(coid(2), "EUR/USD")

    open_, cancelled = run(go())
    assert [o.client_order_id for o in open_] == [coid(2)]
    assert cancelled.status is OrderStatus.CANCELLED


@pytest.mark.parametrize("symbol, side, stop", [
    ("EUR/USD", Side.SELL, 1.1005),  # above the bid
    ("EUR/USD", Side.SELL, 1.1),  # at the bid
    ("EUR/USD", Side.BUY, 1.0995),  # below the ask
])
def test_stop_past_the_market_is_hit_already(fake, symbol, side, stop):
    """The server would answer INVALID_PRICE; the client says what it means: the stop
    would trigger at once (the adapter exits instead) -- and sends nothing."""
    async def go():
        c = await connected(fake)
        with pytest.raises(StopWouldTrigger, match="trigger immediately"):
            await c.place_stop_order(coid(1), symbol, side, 10_000, stop)
        return await c.fetch_order(coid(1), symbol)

    assert run(go()) is None
    assert fake.sent == [] and not fake.orders


def test_stop_too_close_to_the_market_is_refused(fake):
    fake.symbols["EURUSD"].stops_level = 100

    async def go():
        c = await connected(fake)
        with pytest.raises(VenueRejected, match="TRADE_RETCODE_INVALID_STOPS"):
            await c.place_stop_order(coid(1), "EUR/USD", Side.SELL, 10_000, 1.0995)  # 50 pts
        return await c.fetch_order(coid(1), "EUR/USD")

    assert run(go()) is None  # a refused request leaves no order behind
    assert len(fake.sent) == 1 and not fake.orders


def test_stop_quantity_outside_the_volume_limits_never_leaves_the_client(fake):
    async def go():
        c = await connected(fake)
        with pytest.raises(VenueRejected, match="outside"):
            await c.place_stop_order(coid(1), "EUR/USD", Side.SELL, 500, 1.09)  # 0.005 lots

    run(go())
    assert fake.sent == []


@pytest.mark.parametrize("outcome", ["timeout", "lost_after"])
def test_unknown_outcome_of_a_stop_then_lookup_finds_it_resting(fake, outcome):
    fake.script(outcome)

    async def go():
        c = await connected(fake)
        with pytest.raises(VenueUnavailable, match="unknown"):
            await c.place_stop_order(coid(1), "EUR/USD", Side.SELL, 10_000, 1.09)
        return c, await c.fetch_order(coid(1), "EUR/USD")

    c, found = run(go())
    assert found.status is OrderStatus.ACCEPTED and found.stop_price == pytest.approx(1.09)
    assert len(fake.sent) == 1 and [o.comment for o in fake.orders.values()] == [coid(1)]
    assert c.reconnects == (1 if outcome == "lost_after" else 0)


def test_stop_lost_before_the_server_saw_it_is_unknown_there(fake):
    fake.script("lost_before")

    async def go():
        c = await connected(fake)
        with pytest.raises(VenueUnavailable, match="terminal lost"):
            await c.place_stop_order(coid(1), "EUR/USD", Side.SELL, 10_000, 1.09)
        return await c.fetch_order(coid(1), "EUR/USD")

    assert run(go()) is None and not fake.orders


def test_symbol_without_gtc_gets_a_day_order(fake):
    fake.symbols["EURUSD"].expiration_mode = fake.SYMBOL_EXPIRATION_DAY

    async def go():
        c = await connected(fake)
        return await c.place_stop_order(coid(1), "EUR/USD", Side.SELL, 10_000, 1.09)

    assert run(go()).status is OrderStatus.ACCEPTED
    assert fake.sent[-1]["type_time"] == fake.ORDER_TIME_DAY


def test_hedging_account_stop_opens_an_opposite_position(monkeypatch):
    """The caveat of docs/venues.md: on a hedging account the triggered stop does not
    close the position, it opens an opposite one -- net flat, two tickets."""
    monkeypatch.setenv(PW_ENV, "s3cret")
    fake = FakeMt5(hedging=True)

    async def go():
        c = await connected(fake)
        await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 20_000)
        await c.place_stop_order(coid(2), "EUR/USD", Side.SELL, 20_000, 1.095)
        fake.set_tick("EURUSD", 1.0949, 1.095)
        return await c.fetch_positions()

    assert run(go()) == {}
    assert len(fake.positions) == 2
