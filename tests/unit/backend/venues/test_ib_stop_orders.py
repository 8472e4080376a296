"""IbClient's stop orders (the protective stops of a live venue) against the fake TWS / IB
(tests/fakes/ib.py)."""

from __future__ import annotations

import pytest

from backend.messages import OrderStatus, Side
from backend.venues.broker import VenueRejected, VenueUnavailable
from backend.venues.ib.client import IbClient
from tests.support.helpers import aeventually
from tests.unit.backend.venues.test_ib_client import AAPL, EURUSD, coid, connected, run

MSFT = 272093


async def _final(c: IbClient, ref: str, symbol: str):
    o = await c.fetch_order(ref, symbol)
    return o if o is not None and o.final else None


def test_protective_stop_rests_with_our_ref_and_is_found_with_its_price():
    async def go():
        tws, ib, c = await connected(account="DU1234567")
        await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 10)
        placed = await c.place_stop_order(coid(2), "AAPL/USD", Side.SELL, 10.6, 185.004)
        return (c.supports_stop_orders, tws, ib, placed, await c.fetch_order(coid(2), "AAPL/USD"),
                await c.fetch_open_orders(), await c.fetch_positions())

    supports, tws, ib, placed, found, open_, pos = run(go())
    assert supports is True
    sent = ib.place_calls[-1]
    assert (sent.orderType, sent.action, sent.totalQuantity) == ("STP", "SELL", 10)
    assert sent.auxPrice == 185.0  # rounded to the 0.01 tick
    assert sent.orderRef == coid(2) and sent.tif == "GTC" and sent.account == "DU1234567"
    for o in (placed, found):
        assert o.status is OrderStatus.ACCEPTED and o.stop_price == pytest.approx(185.0)
        assert (o.client_order_id, o.symbol, o.side) == (coid(2), "AAPL/USD", Side.SELL)
        assert o.quantity == 10 and o.filled == 0 and not o.external
    (listed,) = open_
    assert listed.client_order_id == coid(2) and listed.stop_price == pytest.approx(185.0)
    assert [o.status for o in tws.by_ref(coid(2))] == ["PreSubmitted"]  # held until triggered
    assert pos == {"AAPL/USD": 10}


def test_stop_price_follows_the_contracts_min_tick():
    async def go():
        tws, ib, c = await connected()
        tws.ticks[EURUSD] = 0.0001  # what TWS's contract details say, read on connect
        await c.connect()  # connected: nothing re-read
        await c.place_stop_order(coid(1), "EUR/USD", Side.SELL, 20_000, 1.09507)
        tws.drop(ib)
        await aeventually(lambda: c.reconnects == 1)  # a connect re-reads the details
        await c.place_stop_order(coid(2), "EUR/USD", Side.SELL, 20_000, 1.09507)
        return ib

    ib = run(go())
    assert [o.auxPrice for o in ib.place_calls] == [1.09505, 1.0951]  # half pips, then 0.0001


def test_triggered_stop_is_a_fill_of_our_ref_and_closes_the_position():
    async def go():
        tws, _, c = await connected()
        await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 10)
        await c.place_stop_order(coid(2), "AAPL/USD", Side.SELL, 10, 185.0)
        tws.move_price(AAPL, 186.0)  # not reached
        near = await c.fetch_order(coid(2), "AAPL/USD"), await c.fetch_positions()
        tws.move_price(AAPL, 184.5)  # through the stop
        fills = await c.fetch_fills(["AAPL/USD"], 0)
        done = await aeventually(lambda: _final(c, coid(2), "AAPL/USD"))
        return near, fills, await c.fetch_positions(), done, await c.fetch_open_orders()

    (still, pos_before), fills, pos, done, open_ = run(go())
    assert still.status is OrderStatus.ACCEPTED and pos_before == {"AAPL/USD": 10}
    entry, stop = fills
    assert entry.client_order_id == coid(1)
    assert (stop.client_order_id, stop.side, stop.quantity) == (coid(2), Side.SELL, 10)
    assert stop.price == pytest.approx(184.5) and stop.fee == pytest.approx(1.0)
    assert stop.venue_order_id == done.venue_order_id
    assert pos == {}
    assert done.status is OrderStatus.FILLED and done.filled == 10
    assert done.avg_price == pytest.approx(184.5) and done.stop_price == pytest.approx(185.0)
    assert open_ == []


def test_buy_stop_protects_a_short():
    async def go():
        tws, _, c = await connected()
        await c.place_market_order(coid(1), "MSFT/USD", Side.SELL, 5)
        placed = await c.place_stop_order(coid(2), "MSFT/USD", Side.BUY, 5, 420.0)
        tws.move_price(MSFT, 421.0)
        return placed, await c.fetch_fills(["MSFT/USD"], 0), await c.fetch_positions()

    placed, fills, pos = run(go())
    assert placed.side is Side.BUY and placed.stop_price == pytest.approx(420.0)
    assert [(f.client_order_id, f.side, f.price) for f in fills[1:]] == [
        (coid(2), Side.BUY, pytest.approx(421.0))]
    assert pos == {}


def test_cancel_removes_the_resting_stop():
    async def go():
        tws, _, c = await connected()
        await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 10)
        await c.place_stop_order(coid(2), "AAPL/USD", Side.SELL, 10, 185.0)
        cancelled = await c.cancel_order(coid(2), "AAPL/USD")
        again = await c.cancel_order(coid(2), "AAPL/USD")
        tws.move_price(AAPL, 180.0)  # through the old stop: nothing trades
        return (tws, cancelled, again, await c.fetch_open_orders(),
                await c.fetch_fills(["AAPL/USD"], 0), await c.fetch_positions())

    tws, cancelled, again, open_, fills, pos = run(go())
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.filled == 0
    assert cancelled.stop_price == pytest.approx(185.0)
    assert again.status is OrderStatus.CANCELLED
    assert [o.status for o in tws.by_ref(coid(2))] == ["Cancelled"]
    assert open_ == [] and [f.client_order_id for f in fills] == [coid(1)]
    assert pos == {"AAPL/USD": 10}


def test_rejected_stop_carries_the_error_text():
    async def go():
        tws, _, c = await connected()
        tws.script("reject")
        with pytest.raises(VenueRejected, match="201"):
            await c.place_stop_order(coid(1), "AAPL/USD", Side.SELL, 10, 185.0)
        return await c.fetch_order(coid(1), "AAPL/USD")

    assert run(go()).status is OrderStatus.REJECTED


def test_zero_share_stop_is_refused_before_sending():
    async def go():
        _, ib, c = await connected()
        with pytest.raises(VenueRejected, match="rounds down to 0"):
            await c.place_stop_order(coid(1), "AAPL/USD", Side.SELL, 0.4, 185.0)
        return ib

    assert run(go()).place_calls == []


def test_unacknowledged_stop_is_unknown_then_found_resting():
    async def go():
        tws, _, c = await connected(timeout_s=0.05)
        tws.script("mute")
        with pytest.raises(VenueUnavailable, match="no acknowledgement.*unknown"):
            await c.place_stop_order(coid(1), "AAPL/USD", Side.SELL, 10, 185.0)
        return tws, await c.fetch_order(coid(1), "AAPL/USD")

    tws, found = run(go())
    assert found.status is OrderStatus.ACCEPTED and found.stop_price == pytest.approx(185.0)
    assert len(tws.by_ref(coid(1))) == 1


def test_stop_survives_a_lost_connection_and_its_fill_is_found_on_reconnect():
    async def go():
        tws, ib, c = await connected()
        await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 10)
        tws.script("drop")  # TWS rests the stop, then the socket breaks before the answer
        with pytest.raises(VenueUnavailable, match="connection lost.*unknown"):
            await c.place_stop_order(coid(2), "AAPL/USD", Side.SELL, 10, 185.0)
        await aeventually(lambda: c.reconnects == 1)
        resting = await c.fetch_order(coid(2), "AAPL/USD")
        tws.drop(ib)
        tws.move_price(AAPL, 184.0)  # triggers while we are away
        await aeventually(lambda: c.reconnects == 2)
        return (ib, resting, await c.fetch_fills(["AAPL/USD"], 0), await c.fetch_positions())

    ib, resting, fills, pos = run(go())
    assert resting.status is OrderStatus.ACCEPTED and resting.stop_price == pytest.approx(185.0)
    assert [(f.client_order_id, f.quantity, f.price) for f in fills[1:]] == [
        (coid(2), 10, pytest.approx(184.0))]
    assert pos == {} and len(ib.place_calls) == 2  # the stop was never resent
