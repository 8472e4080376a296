"""Exchange simulator, state and rules without the server: stop triggers (at the stop, at a
gap open, expired without funds, lazily and deterministically), expiring market orders,
fees in the base or quote asset, the fault model (counted, seeded random, expire matching).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest

from backend.exchange_sim import DEFAULT_DATA, BinanceError, Book, FaultSet, make_fault
from backend.exchange_sim.model import Market

D = Decimal
TICK = D("0.000001")  # ETH/BTC


def book(start_bar: int = 60, **kw: object) -> Book:
    kw.setdefault("balances", {"BTC": "1", "ETH": "5"})
    return Book(DEFAULT_DATA, ["ETH/BTC"], start_bar=start_bar, **kw)  # type: ignore[arg-type]


def on_tick(x: float, rounding: str) -> Decimal:
    return (D(str(x)) / TICK).to_integral_value(rounding=rounding) * TICK


def find_bar(pred: Callable[[Market, int], bool], start: int = 60) -> int:
    m = book().markets["ETHBTC"]
    return next(i for i in range(start, len(m.time) - 1) if pred(m, i))


def px(x: float) -> Decimal:
    return D(str(float(x)))


# ---------------------------------------------------------------- stop orders
# falling: SELL STOP_LOSS / BUY TAKE_PROFIT trigger on low <= stop; rising: high >= stop.
STOPS = [("SELL", "STOP_LOSS", True), ("BUY", "TAKE_PROFIT", True),
         ("BUY", "STOP_LOSS", False), ("SELL", "TAKE_PROFIT", False)]


@pytest.mark.parametrize("side,type_,falling", STOPS)
def test_stop_triggers_on_the_bar_that_trades_through_it_at_the_stop_price(
    side: str, type_: str, falling: bool,
) -> None:
    """Bar i is in progress at placement (no gap at its open); the stop sits between its
    open and its low (high): once it closes the order fills completely at the stop."""
    def suits(m: Market, i: int) -> bool:
        prev, o = px(m.close[i - 1]), px(m.open[i])
        far = px(m.low[i]) if falling else px(m.high[i])
        return abs(prev - o) < 2 * TICK and abs(o - far) > 6 * TICK

    i = find_bar(suits)
    b = book(start_bar=i)
    m = b.markets["ETHBTC"]
    mid = (px(m.open[i]) + (px(m.low[i]) if falling else px(m.high[i]))) / 2
    stop = on_tick(float(mid), ROUND_FLOOR)
    order, trades = b.place("ETHBTC", side, type_, "2.000", None, "tm-s-1", stop_price=str(stop))
    assert trades == [] and order.status == "NEW" and order.stop_price == stop
    free_before = b.balances()
    lock_asset = "ETH" if side == "SELL" else "BTC"
    lock = D("2.000") if side == "SELL" else (D("2.000") * stop).quantize(D("1e-8"))
    assert free_before[lock_asset][1] == lock  # funds locked while it rests
    assert b.open_orders() == [order]

    assert b.advance(1) == b.clock_ms()  # bar i closes
    assert order.status == "FILLED" and order.executed_qty == D(2)
    (trade,) = b.trades
    assert trade.order_id == order.order_id and trade.price == stop and trade.qty == D(2)
    assert order.cum_quote == (D(2) * stop).quantize(D("1e-8"))
    after = b.balances()
    assert after[lock_asset][1] == 0 and b.open_orders() == []
    eth = after["ETH"][0] - free_before["ETH"][0] - free_before["ETH"][1]
    assert eth == (D(2) if side == "BUY" else D(-2))


def test_sell_stop_fills_at_the_open_of_a_bar_that_gaps_through_it() -> None:
    def gap(m: Market, i: int) -> bool:
        return on_tick(float(m.open[i]), ROUND_CEILING) < px(m.close[i - 1])

    i = find_bar(gap)
    b = book(start_bar=i)
    m = b.markets["ETHBTC"]
    stop = on_tick(float(m.open[i]), ROUND_CEILING)  # at or above the open, below the price
    order, _ = b.place("ETHBTC", "SELL", "STOP_LOSS", "1.000", None, "tm-s-2",
                       stop_price=str(stop))
    b.advance(1)
    (trade,) = b.trades
    assert order.status == "FILLED"
    assert trade.price == px(m.open[i]) and trade.price <= stop


def test_stop_only_sees_bars_that_close_after_it_was_placed_and_evaluates_lazily() -> None:
    """The last closed bar traded through the stop before placement: no trigger from it.
    Moving the clock without any call does nothing until the state is read."""
    def old_dip(m: Market, i: int) -> bool:
        low, close = px(m.low[i - 1]), px(m.close[i - 1])
        return close - low > 6 * TICK and px(m.low[i]) > close - 2 * TICK

    i = find_bar(old_dip)
    b = book(start_bar=i)
    m = b.markets["ETHBTC"]
    stop = on_tick(float(px(m.low[i - 1]) + 2 * TICK), ROUND_CEILING)
    order, _ = b.place("ETHBTC", "SELL", "STOP_LOSS", "1.000", None, "tm-s-3",
                       stop_price=str(stop))
    assert b.settle() == [] and order.status == "NEW"
    b.move_clock(1)  # bar i closes (its low is above the stop): still resting
    assert b.open_orders() == [order]
    lows = m.low[i + 1:]
    j = i + 1 + next(k for k, low in enumerate(lows) if px(low) <= stop)
    b.move_clock(j - i)  # bar j closes; nothing evaluates it yet
    assert order.status == "NEW"
    assert b.balances()["ETH"][1] == 0  # reading the state triggered it
    assert order.status == "FILLED" and b.trades[0].order_id == order.order_id


def test_same_clock_same_result() -> None:
    def run() -> list[tuple[str, Decimal, Decimal]]:
        b = book(start_bar=300)
        price = b.price("ETHBTC")
        for k, pct in enumerate(("0.995", "0.99", "0.98")):
            b.place("ETHBTC", "SELL", "STOP_LOSS", "1.000", None, f"tm-s-{k}",
                    stop_price=str(on_tick(float(price * D(pct)), ROUND_FLOOR)))
        b.advance(200)
        return [(o.status, o.executed_qty, o.cum_quote) for o in b.all_orders()]

    first = run()
    assert first == run()
    assert any(s == "FILLED" for s, _, _ in first)


def test_trigger_without_the_funds_expires_with_nothing_filled() -> None:
    """A BUY stop locks qty x stop of quote; the quote fee at the fill is not covered."""
    i = find_bar(lambda m, i: px(m.high[i]) - px(m.open[i]) > 6 * TICK
                 and abs(px(m.close[i - 1]) - px(m.open[i])) < 2 * TICK)
    probe = book(start_bar=i).markets["ETHBTC"]
    stop = on_tick(float((px(probe.open[i]) + px(probe.high[i])) / 2), ROUND_FLOOR)
    cash = (D(2) * stop).quantize(D("1e-8"))
    b = book(start_bar=i, balances={"BTC": str(cash)})
    order, _ = b.place("ETHBTC", "BUY", "STOP_LOSS", "2.000", None, "tm-s-4",
                       stop_price=str(stop))
    assert b.balances()["BTC"] == (0, cash)
    b.advance(1)
    assert order.status == "EXPIRED" and order.executed_qty == 0 and b.trades == []
    assert b.balances()["BTC"] == (cash, 0)


def test_stop_refusals_and_cancel() -> None:
    b = book()
    price = b.price("ETHBTC")
    with pytest.raises(BinanceError, match="trigger immediately") as err:
        b.place("ETHBTC", "SELL", "STOP_LOSS", "1.000", None, "a",
                stop_price=str(on_tick(float(price), ROUND_CEILING)))
    assert err.value.code == -2010
    with pytest.raises(BinanceError, match="stopPrice"):
        b.place("ETHBTC", "SELL", "STOP_LOSS", "1.000", None, "b")
    with pytest.raises(BinanceError, match="PRICE_FILTER"):
        b.place("ETHBTC", "SELL", "STOP_LOSS", "1.000", None, "c", stop_price="0.0800001")
    with pytest.raises(BinanceError, match="insufficient balance"):
        b.place("ETHBTC", "SELL", "STOP_LOSS", "6.000", None, "d", stop_price="0.080000")
    order, _ = b.place("ETHBTC", "SELL", "TAKE_PROFIT", "3.000", None, "e",
                       stop_price="0.120000")
    assert b.balances()["ETH"] == (2, 3)
    assert b.cancel("ETHBTC", None, "e") is order and order.status == "CANCELED"
    assert b.balances()["ETH"] == (5, 0)
    b.advance(2000)  # far past any trigger: a cancelled stop never fills
    assert b.trades == [] and order.status == "CANCELED"


# ---------------------------------------------------------------- market orders, fees
def test_expire_fills_part_of_a_market_order_and_expires_the_rest() -> None:
    b = book()
    price = b.price("ETHBTC")
    order, (trade,) = b.place("ETHBTC", "BUY", "MARKET", "1.000", None, "x", fill_ratio=0.4567)
    assert order.status == "EXPIRED" and order.executed_qty == D("0.456")  # step 0.001
    assert trade.qty == D("0.456") and trade.price == price
    assert b.balances()["ETH"][0] == D("5.456")
    tiny, trades = b.place("ETHBTC", "BUY", "MARKET", "0.002", None, "y", fill_ratio=0.4)
    assert tiny.status == "EXPIRED" and tiny.executed_qty == 0 and trades == []  # < minQty
    assert len(b.trades) == 1


@pytest.mark.parametrize("fee_asset", ["quote", "base"])
def test_fees_buy_in_base_or_quote_sell_always_in_quote(fee_asset: str) -> None:
    b = book(balances={"BTC": "1"}, fee_asset=fee_asset)
    price = b.price("ETHBTC")
    _, (buy,) = b.place("ETHBTC", "BUY", "MARKET", "2.000", None, "b1")
    _, (sell,) = b.place("ETHBTC", "SELL", "MARKET", "1.000", None, "s1")
    cost, proceeds = (D(2) * price).quantize(D("1e-8")), (D(1) * price).quantize(D("1e-8"))
    sell_fee = (proceeds * D("0.001")).quantize(D("1e-8"))
    assert (sell.commission_asset, sell.commission) == ("BTC", sell_fee)
    bal = b.balances()
    if fee_asset == "base":
        assert (buy.commission_asset, buy.commission) == ("ETH", D("0.002"))
        assert bal["ETH"][0] == D("0.998")  # 2 - 0.002 fee - 1 sold
        assert bal["BTC"][0] == 1 - cost + proceeds - sell_fee
    else:
        buy_fee = (cost * D("0.001")).quantize(D("1e-8"))
        assert (buy.commission_asset, buy.commission) == ("BTC", buy_fee)
        assert bal["ETH"][0] == D("1.000")
        assert bal["BTC"][0] == 1 - cost - buy_fee + proceeds - sell_fee


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="fee_asset"):
        book(fee_asset="bnb")
    with pytest.raises(ValueError, match="dup_scope"):
        book(dup_scope="none")
    b = book()
    with pytest.raises(BinanceError, match="quantity") as err:
        b.place("ETHBTC", "BUY", "MARKET", "lots", None, "q")
    assert err.value.code == -1100
    with pytest.raises(BinanceError, match="Invalid orderType"):
        b.place("ETHBTC", "BUY", "STOP_LOSS_LIMIT", "1.000", "0.1", "q", "GTC")


def test_one_lock_for_concurrent_orders() -> None:
    b = book(balances={"BTC": "1"})

    def buy(k: int) -> None:
        for j in range(20):
            b.place("ETHBTC", "BUY", "MARKET", "0.010", None, f"c{k}-{j}")

    threads = [threading.Thread(target=buy, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(b.trades) == 80 and len({o.order_id for o in b.orders}) == 80
    assert b.balances()["ETH"][0] == D("0.800")


# ---------------------------------------------------------------- fault model
def test_counted_fault_is_used_up_and_expire_only_matches_market_orders() -> None:
    fs = FaultSet(threading.RLock(), seed=1)
    fs.arm(make_fault("503", "GET", "/api/v3/account", count=2))
    exp = fs.arm(make_fault("expire", "*", "*", fill_ratio=0.3))
    assert fs.take("GET", "/api/v3/time", {}) is None
    assert [fs.take("GET", "/api/v3/account", {}).kind for _ in range(2)] == ["503", "503"]
    assert fs.take("GET", "/api/v3/account", {}) is None
    assert fs.take("POST", "/api/v3/order", {"type": "LIMIT"}) is None
    assert fs.take("POST", "/api/v3/order", {"type": "MARKET"}) is exp
    assert fs.armed() == [] and exp.hits == 1


def test_random_fault_is_seeded_and_stays_until_cleared() -> None:
    def draws(seed: int) -> list[bool]:
        fs = FaultSet(threading.RLock(), seed=seed)
        fs.arm(make_fault("500", "*", "*", rate=0.3))
        out = [fs.take("GET", "/api/v3/time", {}) is not None for _ in range(200)]
        assert len(fs.armed()) == 1 and fs.clear() == 1 and fs.armed() == []
        return out

    a = draws(7)
    assert a == draws(7) and a != draws(8)
    assert 30 <= sum(a) <= 90  # ~60 of 200


@pytest.mark.parametrize("kw,msg", [
    ({"kind": "teapot"}, "unknown fault"),
    ({"kind": "late", "count": 2, "rate": 0.5}, "not both"),
    ({"kind": "500", "rate": 1.5}, "rate"),
    ({"kind": "500", "count": 0}, "count"),
    ({"kind": "stall", "delay_s": -1}, "delay_s"),
    ({"kind": "500", "path": "api/v3/order"}, "path"),
])
def test_fault_validation(kw: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        make_fault(**kw)
