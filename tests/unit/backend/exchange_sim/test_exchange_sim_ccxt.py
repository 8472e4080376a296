"""Exchange simulator driven by the real ccxt library (``ccxt.async_support.binance``).

recvWindow (a late request refused, a late one landing after the client gave up, a
timestamp from the future), 429 / 5xx mapped to ccxt's errors with nothing applied, drops
before and after applying, expiring market orders, fees in the base asset, STOP_LOSS
orders placed through ccxt that trigger on the market clock or are cancelled, and orders
placed by hand by another client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import ccxt.async_support as ccxt
import httpx
import pytest

from backend.exchange_sim import DEFAULT_DATA, Book, ExchangeSim
from tests.support.helpers import eventually

SYMBOL = "ETH/BTC"
TICK = Decimal("0.000001")


@pytest.fixture
def sim() -> Iterator[ExchangeSim]:
    with ExchangeSim(symbols=[SYMBOL], balances={"BTC": "1", "ETH": "3"}) as s:
        yield s


def run(sim: ExchangeSim, body: Callable[[Any], Awaitable[Any]], *, timeout_ms: int = 3000,
        **options: Any) -> Any:
    """``body(exchange)`` with a ccxt binance pointed at ``sim``, markets loaded."""
    async def go() -> Any:
        ex = ccxt.binance({**sim.ccxt_config(**options), "timeout": timeout_ms})
        try:
            await ex.load_markets()
            return await body(ex)
        finally:
            await ex.close()
    return asyncio.run(go())


def buy(ex: Any, coid: str, amount: float = 0.5) -> Awaitable[dict]:
    return ex.create_order(SYMBOL, "market", "buy", amount, None, {"clientOrderId": coid})


def posts(sim: ExchangeSim) -> list:
    return sim.requests_to("POST", "/api/v3/order")


# ---------------------------------------------------------------- recvWindow
def test_late_request_outside_the_recv_window_is_refused_not_applied(sim: ExchangeSim) -> None:
    sim.inject("late", delay_s=0.6, count=2)

    async def body(ex: Any) -> None:
        with pytest.raises(ccxt.InvalidNonce, match="outside of the recvWindow"):
            await buy(ex, "tm-o-late1")  # the client waits: Binance's -1021 answer
        ex.timeout = 200
        with pytest.raises(ccxt.RequestTimeout):
            await buy(ex, "tm-o-late2")  # the client gives up; the request lands later

    run(sim, body, recvWindow=300)
    eventually(lambda: [r.outcome for r in posts(sim)] == ["rejected", "rejected"], 5,
               message="the late request was refused when it landed")
    assert [(r.error, r.fault, r.params["recvWindow"]) for r in posts(sim)] == [
        (-1021, "late", "300")] * 2
    assert sim.orders() == [] and sim.trades() == []


def test_late_request_inside_the_recv_window_lands_after_the_client_timed_out(
    sim: ExchangeSim,
) -> None:
    sim.inject("late", delay_s=0.6)

    async def body(ex: Any) -> None:
        with pytest.raises(ccxt.RequestTimeout):
            await buy(ex, "tm-o-late3")

    run(sim, body, timeout_ms=200)  # ccxt's default recvWindow: 10 s
    (order,) = eventually(sim.orders, 5, message="the late order landed")
    assert order.client_order_id == "tm-o-late3" and order.status == "FILLED"
    (req,) = posts(sim)
    assert (req.outcome, req.fault, req.error) == ("applied", "late", None)

    async def lookup(ex: Any) -> dict:
        return await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "tm-o-late3"})

    assert run(sim, lookup)["status"] == "closed"


def test_timestamp_ahead_of_the_server_is_refused(sim: ExchangeSim) -> None:
    async def body(ex: Any) -> None:
        with pytest.raises(ccxt.InvalidNonce, match="ahead of the server"):
            await buy(ex, "tm-o-ahead")

    run(sim, body, timeDifference=-5000)  # ccxt's nonce = now - timeDifference
    assert sim.orders() == [] and posts(sim)[0].error == -1021


# ---------------------------------------------------------------- HTTP faults
@pytest.mark.parametrize("kind,error", [
    ("429", ccxt.DDoSProtection), ("500", ccxt.ExchangeNotAvailable),
    ("502", ccxt.ExchangeNotAvailable), ("503", ccxt.ExchangeNotAvailable),
])
def test_rate_limit_and_server_errors_apply_nothing(sim: ExchangeSim, kind: str,
                                                    error: type) -> None:
    sim.inject(kind)

    async def body(ex: Any) -> dict:
        with pytest.raises(error):
            await buy(ex, "tm-o-5xx")
        return await buy(ex, "tm-o-after")  # one-shot fault: the next one goes through

    assert run(sim, body)["status"] == "closed"
    assert [o.client_order_id for o in sim.orders()] == ["tm-o-after"]
    first = posts(sim)[0]
    assert (first.status, first.outcome, first.fault) == (int(kind), "faulted", kind)


def test_429_answer_has_binance_body_and_retry_after(sim: ExchangeSim) -> None:
    sim.inject("429", "GET", "/api/v3/time")
    r = httpx.get(f"{sim.base_url}/api/v3/time")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert r.json()["code"] == -1003 and "request weight" in r.json()["msg"]
    assert httpx.get(f"{sim.base_url}/api/v3/time").status_code == 200


@pytest.mark.parametrize("applied", [False, True])
def test_dropped_connection_before_or_after_applying(sim: ExchangeSim, applied: bool) -> None:
    sim.inject("drop", apply=applied)

    async def body(ex: Any) -> None:
        with pytest.raises(ccxt.NetworkError):
            await buy(ex, "tm-o-drop")

    run(sim, body)
    assert len(sim.orders()) == (1 if applied else 0)
    assert posts(sim)[0].outcome == ("applied" if applied else "faulted")


# ---------------------------------------------------------------- fills
def test_expired_market_order_fills_in_part(sim: ExchangeSim) -> None:
    sim.inject("expire", fill_ratio=0.4)

    async def body(ex: Any) -> tuple[dict, dict, list]:
        placed = await buy(ex, "tm-o-exp", 1.0)
        found = await ex.fetch_order(placed["id"], SYMBOL)
        return placed, found, await ex.fetch_my_trades(SYMBOL)

    placed, found, trades = run(sim, body)
    assert placed["status"] == found["status"] == "expired"
    assert placed["filled"] == found["filled"] == 0.4 and found["amount"] == 1.0
    assert found["info"]["status"] == "EXPIRED"
    (trade,) = trades
    assert trade["amount"] == 0.4 and trade["order"] == placed["id"]
    assert sim.book.balances()["ETH"][0] == Decimal("3.4")


def test_buy_pays_its_fee_in_base_and_sell_in_quote() -> None:
    with ExchangeSim(symbols=[SYMBOL], fee_asset="base") as sim:
        async def body(ex: Any) -> tuple[dict, list]:
            await buy(ex, "tm-o-fee1", 2.0)
            await ex.create_order(SYMBOL, "market", "sell", 1.0, None,
                                  {"clientOrderId": "tm-o-fee2"})
            return await ex.fetch_balance(), await ex.fetch_my_trades(SYMBOL)

        balance, (bought, sold) = run(sim, body)
    assert balance["ETH"]["total"] == pytest.approx(0.998)  # 2.0 - 0.002 fee - 1.0 sold
    assert bought["fee"] == {"cost": 0.002, "currency": "ETH"}
    assert bought["info"]["commissionAsset"] == "ETH"
    assert sold["fee"]["currency"] == "BTC"
    assert sold["fee"]["cost"] == pytest.approx(sold["cost"] * 0.001, abs=1e-8)


# ---------------------------------------------------------------- stop orders
def _stop_bar() -> tuple[int, Decimal]:
    """A bar (no gap at its open) whose low lies > 6 ticks under its open, and a stop
    between the two."""
    m = Book(DEFAULT_DATA, [SYMBOL]).markets["ETHBTC"]
    for i in range(60, len(m.time)):
        prev, o, low = (Decimal(str(float(x))) for x in (m.close[i - 1], m.open[i], m.low[i]))
        if abs(prev - o) < 2 * TICK and o - low > 6 * TICK:
            return i, ((o + low) / 2 / TICK).to_integral_value(rounding=ROUND_FLOOR) * TICK
    raise AssertionError("no suitable bar")


def test_stop_loss_through_ccxt_rests_triggers_on_the_clock_and_cancels() -> None:
    i, stop = _stop_bar()
    with ExchangeSim(symbols=[SYMBOL], start_bar=i, balances={"BTC": "1", "ETH": "3"}) as sim:
        def stop_sell(ex: Any, coid: str, amount: float, price: float) -> Awaitable[dict]:
            return ex.create_order(SYMBOL, "market", "sell", amount, None,
                                   {"stopLossPrice": price, "clientOrderId": coid})

        async def place(ex: Any) -> tuple[dict, dict, list]:
            a = await stop_sell(ex, "tm-s-a", 2.0, float(stop))
            await stop_sell(ex, "tm-s-b", 0.5, float(stop - 5000 * TICK))
            return a, await ex.fetch_balance(), await ex.fetch_open_orders(SYMBOL)

        placed, balance, open_orders = run(sim, place)
        assert sim.requests_to("POST", "/api/v3/order")[0].params["type"] == "STOP_LOSS"
        assert placed["status"] == "open" and placed["triggerPrice"] == float(stop)
        assert balance["ETH"]["used"] == 2.5 and balance["ETH"]["free"] == 0.5
        assert {o["clientOrderId"] for o in open_orders} == {"tm-s-a", "tm-s-b"}

        sim.advance(1)  # bar i closes: its low trades through the stop

        async def after(ex: Any) -> tuple[dict, list, dict, dict]:
            found = await ex.fetch_order(placed["id"], SYMBOL)
            trades = await ex.fetch_my_trades(SYMBOL)
            cancelled = await ex.cancel_order(None, SYMBOL, {"origClientOrderId": "tm-s-b"})
            return found, trades, cancelled, await ex.fetch_balance()

        found, trades, cancelled, balance = run(sim, after)
    assert found["status"] == "closed" and found["info"]["status"] == "FILLED"
    assert found["filled"] == 2.0 and found["average"] == float(stop)
    (trade,) = trades
    assert trade["order"] == placed["id"] and trade["price"] == float(stop)
    assert cancelled["status"] == "canceled"
    assert balance["ETH"]["used"] == 0 and balance["ETH"]["free"] == 1.0
    assert balance["BTC"]["free"] == pytest.approx(1 + 2 * float(stop) * 0.999, abs=1e-8)


def test_stop_that_would_trigger_at_once_is_refused(sim: ExchangeSim) -> None:
    async def body(ex: Any) -> None:
        with pytest.raises(ccxt.InvalidOrder, match="trigger immediately"):
            await ex.create_order(SYMBOL, "market", "sell", 1.0, None,
                                  {"stopLossPrice": 0.5, "clientOrderId": "tm-s-x"})

    run(sim, body)
    assert sim.orders() == []


# ---------------------------------------------------------------- another client
def test_orders_placed_by_hand_show_up_as_someone_elses(sim: ExchangeSim) -> None:
    manual = sim.manual_trade(SYMBOL, "buy", "0.250")
    resting = sim.add_order(SYMBOL, "SELL", "1.000", "0.200000")
    assert manual.status == "FILLED" and not manual.client_order_id.startswith("tm-")

    async def body(ex: Any) -> tuple[list, list]:
        return await ex.fetch_my_trades(SYMBOL), await ex.fetch_open_orders(SYMBOL)

    trades, open_orders = run(sim, body)
    (trade,) = trades
    assert trade["order"] == str(manual.order_id) and trade["amount"] == 0.25
    (o,) = open_orders
    assert o["id"] == str(resting.order_id) and o["clientOrderId"].startswith("web_")
    assert sim.book.balances()["ETH"] == (Decimal("2.250"), Decimal("1.000"))
