"""IbClient against the fake TWS / IB (tests/fakes/ib.py)."""

from __future__ import annotations

import asyncio
import sys
import types

import pytest

from backend.messages import OrderStatus, Side, client_order_id_for
from backend.venues.broker import VenueError, VenueRejected, VenueUnavailable
from backend.venues.config import IbContract, IbkrConfig
from backend.venues.ib.client import IbClient
from backend.venues.ib.mapping import IbNotInstalled, contract_spec, import_ib, status_of
from tests.fakes.ib import FakeIB, FakeTws
from tests.support.helpers import aeventually

SYMBOLS = ["AAPL/USD", "EUR/USD", "MSFT/USD"]
AAPL, EURUSD = 265598, 12087792


def coid(n: int) -> str:
    return client_order_id_for(f"sig-{n}")


async def no_wait(delay: float) -> None:
    await asyncio.sleep(0)  # the backoff is recorded by the client, not waited out


def make(tws: FakeTws | None = None, **over) -> tuple[FakeTws, FakeIB, IbClient]:
    tws = tws or FakeTws()
    ib = FakeIB(tws)
    cfg = IbkrConfig(**{"timeout_s": 2.0, "reconnect_backoff_s": 1.0, "reconnect_max_s": 4.0,
                        **over})
    return tws, ib, IbClient(cfg, SYMBOLS, ib=ib, sleep=no_wait)


async def connected(**over) -> tuple[FakeTws, FakeIB, IbClient]:
    tws, ib, c = make(**over)
    await c.connect()
    return tws, ib, c


def run(coro):
    return asyncio.run(coro)


def test_contract_mapping():
    assert contract_spec("AAPL/USD") == IbContract(sec_type="STK", symbol="AAPL",
                                                   exchange="SMART", currency="USD")
    assert contract_spec("EUR/USD") == IbContract(sec_type="CASH", symbol="EUR",
                                                  exchange="IDEALPRO", currency="USD")
    over = IbContract(sec_type="STK", symbol="BRK B", exchange="NYSE")
    assert contract_spec("BRK.B/USD", over) == IbContract(sec_type="STK", symbol="BRK B",
                                                          exchange="NYSE", currency="USD")


def test_status_mapping():
    assert status_of("Submitted", 0, "", False) == (OrderStatus.ACCEPTED, "")
    assert status_of("PreSubmitted", 3, "", False)[0] is OrderStatus.PARTIALLY_FILLED
    assert status_of("Filled", 10, "", False)[0] is OrderStatus.FILLED
    assert status_of("Cancelled", 0, "error 201: no", False) == (OrderStatus.REJECTED,
                                                                  "error 201: no")
    assert status_of("Cancelled", 0, "", True) == (OrderStatus.CANCELLED, "cancelled")
    assert status_of("Cancelled", 4, "error 202: x", False)[0] is OrderStatus.CANCELLED
    assert status_of("Inactive", 0, "", False) == (OrderStatus.REJECTED, "inactive")


def test_place_fills_with_order_ref():
    async def go():
        tws, ib, c = await connected()
        o = await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 10.7)
        return tws, ib, o, await c.fetch_order(coid(1), "AAPL/USD")

    tws, ib, o, found = run(go())
    (sent,) = ib.place_calls
    assert sent.orderRef == coid(1) and sent.orderType == "MKT"
    assert (sent.action, sent.totalQuantity) == ("BUY", 10)  # whole shares, rounded down
    assert o.status is OrderStatus.FILLED and o.quantity == 10 and o.filled == 10
    assert (o.client_order_id, o.symbol, o.side) == (coid(1), "AAPL/USD", Side.BUY)
    assert o.avg_price == pytest.approx(190.0) and not o.external
    assert found == o
    assert [x.order.orderRef for x in tws.orders.values()] == [coid(1)]


def test_fx_quantities_in_base_units():
    async def go():
        tws, ib, c = await connected()
        o = await c.place_market_order(coid(1), "EUR/USD", Side.SELL, 25_000.4)
        return ib, o

    ib, o = run(go())
    assert ib.place_calls[0].totalQuantity == 25_000
    assert ib.trades()[0].contract.secType == "CASH"
    assert o.symbol == "EUR/USD" and o.side is Side.SELL and o.filled == 25_000


def test_zero_share_order_is_rejected_before_sending():
    async def go():
        _, ib, c = await connected()
        with pytest.raises(VenueRejected, match="rounds down to 0"):
            await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 0.6)
        with pytest.raises(VenueRejected, match="not a configured"):
            await c.place_market_order(coid(2), "TSLA/USD", Side.BUY, 5)
        return ib

    assert run(go()).place_calls == []


def test_partial_fill_then_rest():
    async def go():
        tws, _, c = await connected()
        tws.script("partial", fraction=0.3)
        placed = await c.place_market_order(coid(1), "MSFT/USD", Side.BUY, 100)
        tws.fill(coid(1))
        done = await aeventually(lambda: _filled(c, coid(1)))
        return placed, done

    placed, done = run(go())
    assert placed.status is OrderStatus.PARTIALLY_FILLED and placed.filled == 30
    assert done.status is OrderStatus.FILLED and done.filled == 100


async def _filled(c: IbClient, ref: str):
    o = await c.fetch_order(ref, "MSFT/USD")
    return o if o.status is OrderStatus.FILLED else None


def test_rejection_carries_the_error_text():
    async def go():
        tws, _, c = await connected()
        tws.script("reject")
        with pytest.raises(VenueRejected, match="201.*trading permissions"):
            await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 5)
        return await c.fetch_order(coid(1), "AAPL/USD")

    found = run(go())
    assert found.status is OrderStatus.REJECTED and "201" in found.reason


def test_lookup_of_working_done_and_unknown_orders():
    async def go():
        tws, _, c = await connected()
        tws.script("hold")
        working = await c.place_market_order(coid(1), "AAPL/USD", Side.SELL, 3)
        await c.place_market_order(coid(2), "AAPL/USD", Side.BUY, 3)
        return (working, await c.fetch_order(coid(1), "AAPL/USD"),
                await c.fetch_order(coid(2), "AAPL/USD"), await c.fetch_order(coid(3), "AAPL/USD"))

    placed, working, done, unknown = run(go())
    assert placed.status is OrderStatus.ACCEPTED and working.status is OrderStatus.ACCEPTED
    assert working.client_order_id == coid(1) and working.filled == 0
    assert done.status is OrderStatus.FILLED
    assert unknown is None


def test_open_orders_include_manual_tws_orders():
    async def go():
        tws, _, c = await connected()
        tws.script("hold")
        await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 3)
        await c.place_market_order(coid(2), "AAPL/USD", Side.BUY, 3)  # filled: not open
        perm = tws.add_manual_order(EURUSD, "SELL", 20_000, 1.2)
        return perm, await c.fetch_open_orders(), await c.fetch_open_orders(["AAPL/USD"])

    perm, all_, aapl = run(go())
    by_id = {o.client_order_id: o for o in all_}
    assert set(by_id) == {coid(1), f"ext-{perm}"}
    ext = by_id[f"ext-{perm}"]
    assert ext.external and ext.symbol == "EUR/USD" and ext.side is Side.SELL
    assert ext.quantity == 20_000 and ext.status is OrderStatus.ACCEPTED
    assert not by_id[coid(1)].external
    assert [o.client_order_id for o in aapl] == [coid(1)]


def test_cancel_working_order():
    async def go():
        tws, _, c = await connected()
        tws.script("partial", fraction=0.5)
        await c.place_market_order(coid(1), "MSFT/USD", Side.BUY, 10)
        cancelled = await c.cancel_order(coid(1), "MSFT/USD")
        again = await c.cancel_order(coid(1), "MSFT/USD")
        with pytest.raises(VenueRejected, match="unknown"):
            await c.cancel_order(coid(9), "MSFT/USD")
        return cancelled, again

    cancelled, again = run(go())
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.filled == 5
    assert again.status is OrderStatus.CANCELLED and again.filled == 5


def test_fills_with_fees():
    async def go():
        tws, _, c = await connected()
        await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 400)
        await c.place_market_order(coid(2), "EUR/USD", Side.SELL, 30_000)
        fills = await c.fetch_fills(["AAPL/USD", "EUR/USD"], 0)
        later = await c.fetch_fills(["AAPL/USD", "EUR/USD"], fills[0].time_ns + 1)
        only_fx = await c.fetch_fills(["EUR/USD"], 0)
        return tws, fills, later, only_fx

    tws, fills, later, only_fx = run(go())
    assert [(f.client_order_id, f.symbol, f.side, f.quantity) for f in fills] == [
        (coid(1), "AAPL/USD", Side.BUY, 400), (coid(2), "EUR/USD", Side.SELL, 30_000)]
    assert [f.fill_id for f in fills] == [f.execution.execId for f in tws.fills]
    assert fills[0].fee == pytest.approx(2.0) and fills[1].fee == pytest.approx(2.0)
    assert fills[0].price == pytest.approx(190.0) and fills[1].price == pytest.approx(1.1)
    assert fills[0].venue_order_id == str(tws.fills[0].execution.permId)
    assert all(f.time_ns > 0 for f in fills)
    assert [f.client_order_id for f in later] == [coid(2)]
    assert [f.client_order_id for f in only_fx] == [coid(2)]


def test_fill_is_held_back_until_its_commission_report():
    async def go():
        tws, _, c = await connected(timeout_s=30.0)
        tws.delay_commissions = True
        await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 10)
        before = await c.fetch_fills(["AAPL/USD"], 0)
        tws.send_commissions()
        after = await aeventually(lambda: c.fetch_fills(["AAPL/USD"], 0))
        return before, after

    before, after = run(go())
    assert before == []
    assert [f.fee for f in after] == [pytest.approx(1.0)]


def test_positions_and_balances():
    async def go():
        _, _, c = await connected()
        await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 10)
        await c.place_market_order(coid(2), "EUR/USD", Side.SELL, 20_000)
        await c.place_market_order(coid(3), "AAPL/USD", Side.SELL, 4)
        return await c.fetch_positions(), await c.fetch_balances(), await c.fetch_equity()

    pos, bal, (ccy, nlv) = run(go())
    assert pos == {"AAPL/USD": 6, "EUR/USD": -20_000}
    cash = 100_000 - 10 * 190 + 20_000 * 1.1 + 4 * 190 - 2 * 1.0 - 2.0  # fees: 1+1 stock, 2 FX
    assert bal == {"USD": pytest.approx(cash)}
    assert ccy == "USD" and nlv == pytest.approx(cash + 6 * 190 - 20_000 * 1.1)


def test_connection_lost_during_submit_then_lookup_after_reconnect():
    async def go():
        tws, ib, c = await connected()
        tws.script("drop")
        with pytest.raises(VenueUnavailable, match="connection lost.*unknown"):
            await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 5)
        await aeventually(lambda: c.reconnects == 1)
        found = await c.fetch_order(coid(1), "AAPL/USD")
        fills = await c.fetch_fills(["AAPL/USD"], 0)
        return tws, ib, c, found, fills

    tws, ib, c, found, fills = run(go())
    assert found.status is OrderStatus.FILLED and found.filled == 5
    assert found.avg_price == pytest.approx(190.0)
    assert [f.client_order_id for f in fills] == [coid(1)]
    assert len(tws.by_ref(coid(1))) == 1 and len(ib.place_calls) == 1  # never resent
    assert c.backoff_delays == [1.0]


def test_order_lost_with_the_connection_is_unknown_to_tws():
    async def go():
        tws, _, c = await connected()
        tws.script("lose")
        with pytest.raises(VenueUnavailable):
            await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 5)
        await aeventually(lambda: c.reconnects == 1)
        return tws, await c.fetch_order(coid(1), "AAPL/USD")

    tws, found = run(go())
    assert found is None and tws.orders == {}


def test_in_flight_timeout_is_resolved_by_asking_tws():
    async def go():
        tws, _, c = await connected(timeout_s=0.05)
        tws.script("mute")
        with pytest.raises(VenueUnavailable, match="no acknowledgement.*unknown"):
            await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 5)
        return tws, await c.fetch_order(coid(1), "AAPL/USD")

    tws, found = run(go())
    assert found.status is OrderStatus.FILLED and found.filled == 5
    assert found.avg_price == pytest.approx(190.0)
    assert len(tws.by_ref(coid(1))) == 1


def test_unconfirmed_order_is_never_reported_unknown_while_connected():
    async def go():
        tws, ib, c = await connected(timeout_s=0.05)
        tws.script("vanish")
        with pytest.raises(VenueUnavailable):
            await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 5)
        with pytest.raises(VenueUnavailable, match="not confirmed"):
            await c.fetch_order(coid(1), "AAPL/USD")
        tws.drop(ib)  # the session that sent it is gone: TWS's word is final now
        await aeventually(lambda: c.reconnects == 1)
        return await c.fetch_order(coid(1), "AAPL/USD")

    assert run(go()) is None


def test_reconnect_with_exponential_backoff():
    async def go():
        tws, ib, c = await connected()
        tws.refuse = 4
        tws.drop(ib)
        with pytest.raises(VenueUnavailable, match="not connected"):
            await c.fetch_positions()
        await aeventually(lambda: c.reconnects == 1)
        return tws, c, await c.fetch_positions()

    tws, c, pos = run(go())
    assert c.backoff_delays == [1.0, 2.0, 4.0, 4.0, 4.0]  # doubling, capped at 4 s
    assert tws.connects == 1 + 5 and pos == {}


def test_fills_missed_while_disconnected_are_found_on_reconnect():
    async def go():
        tws, ib, c = await connected()
        tws.script("hold")
        await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 7)
        tws.drop(ib)
        tws.fill(coid(1))  # executes while we are away
        await aeventually(lambda: c.reconnects == 1)
        return await c.fetch_fills(["AAPL/USD"], 0), await c.fetch_order(coid(1), "AAPL/USD")

    fills, found = run(go())
    assert [(f.client_order_id, f.quantity, f.fee) for f in fills] == [(coid(1), 7, 1.0)]
    assert found.status is OrderStatus.FILLED


def test_close_stops_reconnecting():
    async def go():
        tws, ib, c = await connected()
        await c.close()
        return tws, ib, c

    tws, ib, c = run(go())
    assert not ib.isConnected() and c.backoff_delays == [] and tws.connects == 1


def test_unknown_contract_fails_connect():
    tws = FakeTws()
    c = IbClient(IbkrConfig(), ["TSLA/USD"], ib=FakeIB(tws))
    with pytest.raises(VenueError, match="TSLA"):
        run(c.connect())


def test_connection_refused_is_unavailable():
    tws, _, c = make()
    tws.refuse = 1
    with pytest.raises(VenueUnavailable, match="ConnectionRefusedError"):
        run(c.connect())


def test_import_helper_prefers_ib_async_then_ib_insync(monkeypatch):
    assert import_ib().__name__ == "ib_async"
    stub = types.ModuleType("ib_insync")
    monkeypatch.setitem(sys.modules, "ib_async", None)
    monkeypatch.setitem(sys.modules, "ib_insync", stub)
    assert import_ib() is stub
    monkeypatch.setitem(sys.modules, "ib_insync", None)
    with pytest.raises(IbNotInstalled, match=r"pip install tradingmesh\[ibkr\]"):
        run(IbClient(IbkrConfig(), SYMBOLS).connect())


def test_a_request_tws_never_answers_is_unavailable():
    async def go():
        _, ib, c = await connected(timeout_s=0.05)
        ib.stalled = True
        for call in (c.fetch_open_orders(), c.fetch_fills(["AAPL/USD"], 0), c.fetch_balances(),
                     c.fetch_order(coid(1), "AAPL/USD")):
            with pytest.raises(VenueUnavailable, match="TimeoutError"):
                await call

    run(go())


def test_socket_broken_under_place_is_an_unknown_outcome(monkeypatch):
    async def go():
        _, ib, c = await connected()

        def broken(contract, order):
            raise ConnectionError("Not connected")

        monkeypatch.setattr(ib, "placeOrder", broken)
        with pytest.raises(VenueUnavailable, match="outcome unknown"):
            await c.place_market_order(coid(1), "AAPL/USD", Side.BUY, 5)

    run(go())


def test_connect_while_reconnecting_does_not_open_a_second_session():
    async def go():
        tws, ib, c = await connected()
        tws.refuse = 3
        tws.drop(ib)
        with pytest.raises(VenueUnavailable, match="reconnecting"):
            await c.connect()
        await aeventually(lambda: c.reconnects == 1)
        await c.connect()  # connected: nothing to do
        return tws

    assert run(go()).connects == 1 + 4
