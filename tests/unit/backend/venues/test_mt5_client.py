"""Mt5Client against the fake MetaTrader5 terminal (tests/fakes/mt5.py)."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time

import pytest

from backend.messages import OrderStatus, Side, client_order_id_for
from backend.venues.broker import VenueError, VenueRejected, VenueUnavailable
from backend.venues.config import Mt5Config
from backend.venues.mt5.client import Mt5Client, Mt5NotInstalled
from tests.fakes.mt5 import FakeMt5

PW_ENV = "TM_TEST_MT5_PASSWORD"
SYMBOLS = ["EUR/USD", "GBP/USD", "US500/USD"]


def coid(n: int) -> str:
    return client_order_id_for(f"sig-{n}")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeMt5:
    monkeypatch.setenv(PW_ENV, "s3cret")
    return FakeMt5()


def client_for(fake: FakeMt5, **over) -> Mt5Client:
    cfg = Mt5Config(login=fake.login_id, server=fake.server, password_env=PW_ENV,
                    reconnect_backoff_s=0, symbols={"US500/USD": "US500"}, **over)
    return Mt5Client(cfg, SYMBOLS, module=fake)


def run(coro):
    return asyncio.run(coro)


async def connected(fake: FakeMt5, **over) -> Mt5Client:
    c = client_for(fake, **over)
    await c.connect()
    return c


def test_place_fills_with_client_order_id_in_comment(fake, caplog):
    caplog.set_level(logging.DEBUG)

    async def go():
        c = await connected(fake)
        return await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 15_000)

    o = run(go())
    assert o.status is OrderStatus.FILLED
    assert (o.client_order_id, o.symbol, o.side) == (coid(1), "EUR/USD", Side.BUY)
    assert o.quantity == pytest.approx(15_000) and o.filled == pytest.approx(15_000)
    assert o.avg_price == pytest.approx(1.1001)  # the ask
    req = fake.sent[0]
    assert req["comment"] == coid(1) and len(coid(1)) <= 31
    assert req["magic"] == 240_615 and req["volume"] == pytest.approx(0.15)
    assert req["action"] == fake.TRADE_ACTION_DEAL and req["type"] == fake.ORDER_TYPE_BUY
    assert req["type_filling"] == fake.ORDER_FILLING_IOC
    assert req["type_time"] == fake.ORDER_TIME_GTC and req["deviation"] == 20
    assert req["price"] == pytest.approx(1.1001)
    init = fake.init_calls[0]
    assert init["login"] == fake.login_id and init["password"] == "s3cret"
    assert "s3cret" not in caplog.text


def test_stops_are_sent_when_given(fake):
    async def go():
        c = await connected(fake)
        await c.place_market_order(coid(1), "EUR/USD", Side.SELL, 10_000, sl=1.12, tp=1.05)

    run(go())
    assert fake.sent[0]["sl"] == 1.12 and fake.sent[0]["tp"] == 1.05
    assert fake.sent[0]["price"] == pytest.approx(1.1)  # the bid


def test_quantity_rounded_down_to_step_and_limits_checked(fake):
    async def go():
        c = await connected(fake)
        o = await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 15_999)
        with pytest.raises(VenueRejected, match="outside"):
            await c.place_market_order(coid(2), "EUR/USD", Side.BUY, 500)  # 0.005 lots
        with pytest.raises(VenueRejected, match="outside"):
            await c.place_market_order(coid(3), "EUR/USD", Side.BUY, 6_000_000)  # 60 lots
        cfd = await c.place_market_order(coid(4), "US500/USD", Side.BUY, 1.55)
        return o, cfd

    o, cfd = run(go())
    assert o.quantity == pytest.approx(15_000)
    assert cfd.quantity == pytest.approx(1.5) and fake.sent[1]["symbol"] == "US500"
    assert len(fake.sent) == 2  # the out-of-limit orders never left the client


def test_partial_fill_ioc_remainder_cancelled(fake):
    fake.script("partial", fraction=0.4)

    async def go():
        c = await connected(fake)
        placed = await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 50_000)
        return placed, await c.fetch_order(coid(1), "EUR/USD")

    placed, found = run(go())
    for o in (placed, found):
        assert o.status is OrderStatus.CANCELLED
        assert o.filled == pytest.approx(20_000) and o.quantity == pytest.approx(50_000)
    assert "remainder cancelled" in placed.reason


def test_partial_fill_return_stays_working_then_fills(fake):
    fake.script("partial", fraction=0.4)

    async def go():
        c = await connected(fake, filling="return")
        placed = await c.place_market_order(coid(1), "EUR/USD", Side.SELL, 50_000)
        working = await c.fetch_order(coid(1), "EUR/USD")
        open_ = await c.fetch_open_orders(["EUR/USD"])
        fake.fill_rest(int(placed.venue_order_id))
        done = await c.fetch_order(coid(1), "EUR/USD")
        return placed, working, open_, done

    placed, working, open_, done = run(go())
    assert placed.status is OrderStatus.PARTIALLY_FILLED
    assert working.status is OrderStatus.PARTIALLY_FILLED
    assert working.filled == pytest.approx(20_000)
    assert [o.client_order_id for o in open_] == [coid(1)] and not open_[0].external
    assert done.status is OrderStatus.FILLED and done.filled == pytest.approx(50_000)
    assert fake.sent[0]["type_filling"] == fake.ORDER_FILLING_RETURN


@pytest.mark.parametrize("setup, match", [
    (lambda f: setattr(f, "balance", 1_000.0), "TRADE_RETCODE_NO_MONEY"),
    (lambda f: setattr(f.symbols["EURUSD"], "closed", True), "TRADE_RETCODE_MARKET_CLOSED"),
    # the broker changed the volume step after we cached the symbol: the server refuses
    (lambda f: setattr(f.symbols["EURUSD"], "vstep", 0.1), "TRADE_RETCODE_INVALID_VOLUME"),
])
def test_rejections_map_to_venue_rejected(fake, setup, match):
    async def go():
        c = await connected(fake)
        setup(fake)
        with pytest.raises(VenueRejected, match=match):
            await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 150_000 + 5_000)
        return await c.fetch_order(coid(1), "EUR/USD")

    assert run(go()) is None  # a rejected request leaves no order behind
    assert not fake.orders


def test_requote_is_retried_once_with_a_fresh_price(fake):
    fake.script("requote")

    async def go():
        c = await connected(fake)
        return await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 10_000)

    o = run(go())
    assert o.status is OrderStatus.FILLED
    assert [r["comment"] for r in fake.sent] == [coid(1), coid(1)]
    assert fake.sent[1]["price"] == pytest.approx(fake.sent[0]["price"] + 0.0005)
    assert o.avg_price == pytest.approx(fake.sent[1]["price"])
    assert len(fake.orders) == 1


def test_second_requote_is_a_rejection(fake):
    fake.script("requote", "price_changed")

    async def go():
        c = await connected(fake)
        with pytest.raises(VenueRejected, match="TRADE_RETCODE_PRICE_CHANGED"):
            await c.place_market_order(coid(1), "EUR/USD", Side.SELL, 10_000)

    run(go())
    assert len(fake.sent) == 2 and not fake.orders


def test_lookup_by_client_order_id(fake):
    async def go():
        c = await connected(fake)
        await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 10_000)
        done = await c.fetch_order(coid(1), "EUR/USD")
        other_symbol = await c.fetch_order(coid(1), "GBP/USD")
        unknown = await c.fetch_order(coid(2), "EUR/USD")
        return done, other_symbol, unknown

    done, other_symbol, unknown = run(go())
    assert done.status is OrderStatus.FILLED and done.client_order_id == coid(1)
    assert done.filled == pytest.approx(10_000) and done.avg_price == pytest.approx(1.1001)
    assert other_symbol is None and unknown is None


def test_open_orders_include_external_ones(fake):
    fake.script("partial")

    async def go():
        c = await connected(fake, filling="return")
        await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 20_000)
        ticket = fake.add_external_order("GBPUSD", 0, 0.2, 1.2)
        fake.add_external_order("GBPUSD", 1, 0.1, 1.3, magic=240_615, comment="hand made")
        all_ = await c.fetch_open_orders()
        eur = await c.fetch_open_orders(["EUR/USD"])
        return ticket, all_, eur

    ticket, all_, eur = run(go())
    by_id = {o.client_order_id: o for o in all_}
    assert set(by_id) == {coid(1), f"ext-{ticket}", f"ext-{ticket + 1}"}
    assert not by_id[coid(1)].external
    ext = by_id[f"ext-{ticket}"]
    assert ext.external and ext.symbol == "GBP/USD" and ext.side is Side.BUY
    assert ext.quantity == pytest.approx(20_000) and ext.status is OrderStatus.ACCEPTED
    assert by_id[f"ext-{ticket + 1}"].external  # our magic but not our id
    assert [o.client_order_id for o in eur] == [coid(1)]


def test_cancel_working_order(fake):
    fake.script("partial")

    async def go():
        c = await connected(fake, filling="return")
        await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 20_000)
        cancelled = await c.cancel_order(coid(1), "EUR/USD")
        again = await c.cancel_order(coid(1), "EUR/USD")
        with pytest.raises(VenueRejected, match="unknown"):
            await c.cancel_order(coid(9), "EUR/USD")
        return cancelled, again, await c.fetch_open_orders()

    cancelled, again, open_ = run(go())
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.filled == pytest.approx(10_000)
    assert again == cancelled and open_ == []


def test_fills_with_fees_since(fake):
    async def go():
        c = await connected(fake)
        await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 30_000)
        fills = await c.fetch_fills(["EUR/USD", "GBP/USD"], 0)
        await c.place_market_order(coid(2), "GBP/USD", Side.SELL, 10_000)
        later = await c.fetch_fills(["EUR/USD", "GBP/USD"], fills[-1].time_ns + 1)
        only_eur = await c.fetch_fills(["EUR/USD"], 0)
        return fills, later, only_eur

    fills, later, only_eur = run(go())
    (f,) = fills
    deal = fake.deals[0]
    assert f.fill_id == str(deal.ticket) and f.venue_order_id == str(deal.order)
    assert (f.client_order_id, f.symbol, f.side) == (coid(1), "EUR/USD", Side.BUY)
    assert f.quantity == pytest.approx(30_000) and f.price == pytest.approx(1.1001)
    assert f.fee == pytest.approx(7.0 * 0.3)  # commission per lot, as a positive cost
    assert f.time_ns == deal.time_msc * 1_000_000
    assert [(x.client_order_id, x.side, x.symbol) for x in later] == [
        (coid(2), Side.SELL, "GBP/USD")]
    assert [x.client_order_id for x in only_eur] == [coid(1)]


def test_server_clock_offset_shifts_fill_times(fake):
    async def go():
        c = await connected(fake, server_utc_offset_s=7200)
        await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 10_000)
        return await c.fetch_fills(["EUR/USD"], 0)

    (f,) = run(go())
    assert f.time_ns == (fake.deals[0].time_msc - 7_200_000) * 1_000_000


def test_positions_net_and_balances(fake):
    async def go():
        c = await connected(fake)
        await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 30_000)
        await c.place_market_order(coid(2), "GBP/USD", Side.SELL, 10_000)
        await c.place_market_order(coid(3), "US500/USD", Side.BUY, 2)
        await c.place_market_order(coid(4), "EUR/USD", Side.SELL, 10_000)
        return await c.fetch_positions(), await c.fetch_balances(), await c.fetch_equity()

    pos, bal, (ccy, equity) = run(go())
    assert pos == pytest.approx({"EUR/USD": 20_000, "GBP/USD": -10_000, "US500/USD": 2})
    assert set(bal) == {"USD"} and bal["USD"] == pytest.approx(fake.balance)
    assert fake.balance < 100_000  # commissions and the spread of the partial close
    assert ccy == "USD" and equity == pytest.approx(fake.account_info().equity)


def test_hedging_account_positions_are_netted(monkeypatch):
    monkeypatch.setenv(PW_ENV, "s3cret")
    fake = FakeMt5(hedging=True)

    async def go():
        c = await connected(fake)
        await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 30_000)
        await c.place_market_order(coid(2), "EUR/USD", Side.SELL, 10_000)
        return await c.fetch_positions()

    assert run(go()) == pytest.approx({"EUR/USD": 20_000})
    assert len(fake.positions) == 2  # two tickets at the terminal, one net position for us


@pytest.mark.parametrize("outcome", ["lost_after", "timeout"])
def test_unknown_outcome_then_lookup_finds_exactly_one_order(fake, outcome):
    fake.script(outcome)

    async def go():
        c = await connected(fake)
        with pytest.raises(VenueUnavailable, match="unknown"):
            await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 10_000)
        found = await c.fetch_order(coid(1), "EUR/USD")
        return c, found

    c, found = run(go())
    assert found is not None and found.status is OrderStatus.FILLED
    assert found.filled == pytest.approx(10_000)
    assert len(fake.sent) == 1 and [o.comment for o in fake.orders.values()] == [coid(1)]
    assert c.reconnects == (1 if outcome == "lost_after" else 0)


def test_terminal_lost_before_the_server_saw_the_order(fake):
    fake.script("lost_before")

    async def go():
        c = await connected(fake)
        with pytest.raises(VenueUnavailable, match="terminal lost"):
            await c.place_market_order(coid(1), "EUR/USD", Side.BUY, 10_000)
        return await c.fetch_order(coid(1), "EUR/USD")

    assert run(go()) is None  # definitely unknown: safe to send again
    assert fake.sent == [] and not fake.orders


def test_reconnect_retries_initialize_then_gives_up(fake):
    async def go():
        c = await connected(fake, reconnect_attempts=3)
        fake.lose_terminal()
        fake.refuse_init = 2  # the terminal comes back on the third initialize
        first = await c.fetch_positions()
        calls_after_first = len(fake.init_calls)
        fake.lose_terminal()
        fake.refuse_init = 10
        with pytest.raises(VenueUnavailable):
            await c.fetch_positions()
        fake.refuse_init = 0  # the terminal is back: the next call reconnects by itself
        bal = await c.fetch_balances()
        return c, first, calls_after_first, bal

    c, first, calls_after_first, bal = run(go())
    assert first == {} and calls_after_first == 1 + 3
    assert bal == {"USD": 100_000.0} and c.reconnects == 1
    assert all(k.get("password") == "s3cret" for k in fake.init_calls)


def test_wrong_password_is_a_clear_error_without_the_password(fake, monkeypatch):
    monkeypatch.setenv(PW_ENV, "wrong-pw")
    with pytest.raises(VenueError, match="refused: Terminal: Authorization failed") as e:
        run(connected(fake))
    assert not isinstance(e.value, VenueUnavailable) and "wrong-pw" not in str(e.value)


def test_password_from_secrets_file(fake, monkeypatch, tmp_path):
    monkeypatch.delenv(PW_ENV)
    f = tmp_path / "mt5.secrets"
    f.write_text('password = "s3cret"\n')
    f.chmod(0o600)
    run(connected(fake, secrets_file=f))
    assert fake.init_calls[0]["password"] == "s3cret"


def test_unknown_symbol_fails_connect(fake):
    c = Mt5Client(Mt5Config(login=fake.login_id, password_env=PW_ENV), ["XAU/USD"], module=fake)
    with pytest.raises(VenueError, match="XAUUSD"):
        run(c.connect())


def test_without_the_package_connect_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "MetaTrader5", None)  # import fails, as on Linux
    c = Mt5Client(Mt5Config(), ["EUR/USD"])
    with pytest.raises(Mt5NotInstalled) as e:
        run(c.connect())
    msg = str(e.value)
    assert "MetaTrader5 package" in msg and "Windows" in msg
    assert "pip install tradingmesh[mt5]" in msg
    run(c.close())  # nothing to close, never raises


class SlowTerminal(FakeMt5):
    """Records how many SDK calls run at once (the SDK is not thread-safe)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = self.most = 0
        self.guard = threading.Lock()

    def positions_get(self, *a, **kw):
        with self.guard:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(0.002)  # a slow terminal, so overlapping calls would show
        with self.guard:
            self.inside -= 1
        return super().positions_get(*a, **kw)


def test_sdk_calls_are_serialized(monkeypatch):
    monkeypatch.setenv(PW_ENV, "s3cret")
    fake = SlowTerminal()

    async def go():
        c = await connected(fake)
        return await asyncio.gather(*(c.fetch_positions() for _ in range(8)))

    assert run(go()) == [{}] * 8
    assert fake.most == 1
