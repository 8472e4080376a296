"""CcxtClient: the real ccxt library against the loopback fake Binance (no Redis, no internet).

Place + fill, cancel, open orders (ours and external), balances and positions, the
UNKNOWN protocol (timeout after the exchange applied the order -> exactly one order after
recovery), pre-trade precision/limit rejections that never reach the exchange, error
mapping and secrets that never show up in errors or logs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.binance import TEST_KEY, TEST_SECRET, FakeBinance

from backend.messages import OrderStatus, Side, client_order_id_for
from backend.venues.broker import VenueRejected, VenueUnavailable
from backend.venues.ccxt.client import CcxtClient
from backend.venues.ccxt.mapping import fee_in_quote, make_exchange, to_venue_order
from backend.venues.config import CcxtConfig

SYMBOLS = ["ETH/BTC", "ADA/BTC"]
KEY_ENV, SECRET_ENV = "TEST_CCXT_KEY", "TEST_CCXT_SECRET"


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    with FakeBinance(symbols=SYMBOLS) as f:
        yield f


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    monkeypatch.setenv(SECRET_ENV, TEST_SECRET)


def cfg(fake: FakeBinance, **kw: Any) -> CcxtConfig:
    base: dict[str, Any] = {"urls": fake.ccxt_urls(), "rate_limit_ms": 1, "timeout_ms": 2000,
                            "api_key_env": KEY_ENV, "secret_env": SECRET_ENV}
    base.update(kw)
    return CcxtConfig(**base)


def run(fake: FakeBinance, body: Callable[[CcxtClient], Awaitable[Any]], **kw: Any) -> Any:
    """Run ``body(client)`` with a connected client, closing it afterwards."""
    async def go() -> Any:
        client = CcxtClient(cfg(fake, **kw), SYMBOLS)
        try:
            await client.connect()
            return await body(client)
        finally:
            await client.close()
    return asyncio.run(go())


def coid(n: int) -> str:
    return client_order_id_for(f"sig-{n}")


def test_market_order_fills_and_is_recorded_with_our_client_order_id(fake: FakeBinance) -> None:
    async def body(c: CcxtClient) -> Any:
        placed = await c.place_market_order(coid(1), "ETH/BTC", Side.BUY, 0.12345)
        return placed, await c.fetch_order(coid(1), "ETH/BTC"), await c.fetch_fills(
            SYMBOLS, 0), await c.fetch_balances(), await c.fetch_positions()

    placed, looked_up, fills, balances, positions = run(fake, body)
    (order,) = fake.orders()
    (trade,) = fake.trades()
    assert order.client_order_id == coid(1) and order.status == "FILLED"
    assert str(order.orig_qty) == "0.123"  # truncated to the 0.001 step before sending
    assert placed.status is OrderStatus.FILLED and placed.client_order_id == coid(1)
    assert placed.quantity == placed.filled == 0.123
    assert placed.avg_price == float(trade.price)
    assert looked_up is not None and looked_up.venue_order_id == str(order.order_id)
    (fill,) = fills
    assert fill.client_order_id == coid(1) and fill.fill_id == str(trade.trade_id)
    assert (fill.quantity, fill.price, fill.fee) == (0.123, float(trade.price),
                                                    float(trade.commission))
    assert trade.commission_asset == "BTC"
    assert fill.time_ns == trade.time_ms * 1_000_000
    assert balances["ETH"] == 0.123
    assert balances["BTC"] == pytest.approx(1 - 0.123 * float(trade.price) - fill.fee)
    assert positions == {"ETH/BTC": 0.123}


def test_fee_paid_in_base_is_reported_in_base_units(tmp_path: Path) -> None:
    with FakeBinance(symbols=SYMBOLS, fee_asset="base") as fake:
        async def body(c: CcxtClient) -> Any:
            await c.place_market_order(coid(2), "ETH/BTC", Side.BUY, 0.5)
            return await c.fetch_fills(["ETH/BTC"], 0)

        (fill,) = run(fake, body)
        (trade,) = fake.trades()
    assert trade.commission_asset == "ETH"
    assert fill.base_fee == pytest.approx(float(trade.commission)) and fill.fee == 0.0
    assert fill.quantity == pytest.approx(0.5)  # the executed quantity; the ledger nets it


def test_resting_limit_order_is_listed_then_cancelled(fake: FakeBinance) -> None:
    ours = fake.add_order("ETH/BTC", "BUY", "1.000", "0.050000", client_order_id=coid(3))
    external = fake.add_order("ADA/BTC", "BUY", "100", "0.00002000", "web_abc123")
    assert fake.book.balances()["BTC"][1] > 0  # funds locked

    async def body(c: CcxtClient) -> Any:
        before = await c.fetch_open_orders()
        cancelled = await c.cancel_order(coid(3), "ETH/BTC")
        again = await c.cancel_order(coid(3), "ETH/BTC")  # already final: unchanged
        ext_cancelled = await c.cancel_order(f"ext-{external.order_id}", "ADA/BTC")
        return before, cancelled, again, ext_cancelled, await c.fetch_open_orders()

    before, cancelled, again, ext_cancelled, after = run(fake, body)
    by_id = {o.client_order_id: o for o in before}
    assert set(by_id) == {coid(3), f"ext-{external.order_id}"}
    assert by_id[coid(3)].status is OrderStatus.ACCEPTED and not by_id[coid(3)].external
    assert by_id[coid(3)].quantity == 1.0 and by_id[coid(3)].filled == 0.0
    assert by_id[f"ext-{external.order_id}"].external
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.client_order_id == coid(3)
    assert again.status is OrderStatus.CANCELLED
    assert ext_cancelled.status is OrderStatus.CANCELLED and ext_cancelled.external
    assert after == []
    assert ours.status == "CANCELED" and external.status == "CANCELED"
    assert fake.book.balances()["BTC"] == (1, 0)  # locked funds released


def test_timeout_on_create_that_reached_the_exchange_is_resolved_by_lookup(
    fake: FakeBinance,
) -> None:
    """The exchange applies the order but answers after the client's timeout: UNKNOWN.
    ccxt must not retry (even with maxRetriesOnFailure configured); the lookup by client
    order id finds the order, and a resend is answered from it: one order in the end."""
    fake.inject("stall", stall_s=1.5)

    async def body(c: CcxtClient) -> Any:
        with pytest.raises(VenueUnavailable, match="RequestTimeout"):
            await c.place_market_order(coid(4), "ETH/BTC", Side.BUY, 0.2)
        found = await c.fetch_order(coid(4), "ETH/BTC")
        resent = await c.place_market_order(coid(4), "ETH/BTC", Side.BUY, 0.2)
        return found, resent

    found, resent = run(fake, body, timeout_ms=400, options={"maxRetriesOnFailure": 3})
    assert len(fake.requests_to("POST", "/api/v3/order")) == 2  # no automatic retry
    assert len(fake.orders()) == 1 and len(fake.trades()) == 1
    assert found is not None and found.status is OrderStatus.FILLED
    assert resent.venue_order_id == found.venue_order_id  # duplicate -> the same order


@pytest.mark.parametrize("kind,applied", [("503", False), ("drop", False), ("drop", True)])
def test_failed_create_is_unavailable_and_lookup_tells_the_outcome(
    fake: FakeBinance, kind: str, applied: bool
) -> None:
    fake.inject(kind, apply=applied)

    async def body(c: CcxtClient) -> Any:
        with pytest.raises(VenueUnavailable):
            await c.place_market_order(coid(5), "ETH/BTC", Side.BUY, 0.2)
        return await c.fetch_order(coid(5), "ETH/BTC")

    found = run(fake, body)
    assert len(fake.requests_to("POST", "/api/v3/order")) == 1
    assert len(fake.orders()) == (1 if applied else 0)
    assert (found is not None) is applied


@pytest.mark.parametrize("symbol,qty,limit", [
    ("ETH/BTC", 0.0004, "amount step"),  # rounds to 0 at step 0.001
    ("ETH/BTC", 0.001, "limits.cost.min"),  # 0.001 ETH x ~0.09 < 0.0001 BTC
    ("ADA/BTC", 1.9, "limits.cost.min"),  # 1 ADA x ~5e-5 BTC
    ("ETH/BTC", 1e9, "limits.amount.max"),
])
def test_precision_and_limits_reject_before_sending(
    fake: FakeBinance, symbol: str, qty: float, limit: str
) -> None:
    async def body(c: CcxtClient) -> None:
        with pytest.raises(VenueRejected, match=limit.replace(".", r"\.")):
            await c.place_market_order(coid(6), symbol, Side.BUY, qty)

    run(fake, body)
    assert fake.requests_to("POST", "/api/v3/order") == []
    assert fake.orders() == []


def test_exchange_refusals_map_to_rejected_and_unknown_orders_to_none(
    fake: FakeBinance,
) -> None:
    async def body(c: CcxtClient) -> Any:
        with pytest.raises(VenueRejected, match="InsufficientFunds|insufficient balance"):
            await c.place_market_order(coid(7), "ETH/BTC", Side.BUY, 50.0)  # ~4.5 BTC
        with pytest.raises(VenueRejected, match="insufficient balance"):
            await c.place_market_order(coid(8), "ETH/BTC", Side.SELL, 1.0)  # holds no ETH
        with pytest.raises(VenueRejected, match="unknown order"):
            await c.cancel_order(coid(9), "ETH/BTC")
        return await c.fetch_order(coid(9), "ETH/BTC")

    assert run(fake, body) is None
    assert fake.orders() == []


def test_wrong_secret_is_a_clear_error_without_the_secret(
    fake: FakeBinance, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-secret-Zq81x7Lm"
    monkeypatch.setenv(SECRET_ENV, wrong)
    caplog.set_level(logging.DEBUG)

    async def body(c: CcxtClient) -> None:  # never reached: connect checks the keys
        raise AssertionError("connected with a wrong secret")

    with pytest.raises(VenueRejected) as err:
        run(fake, body)
    text = str(err.value)
    assert "authentication failed" in text and "Signature for this request is not valid" in text
    assert wrong not in text and TEST_KEY not in text and wrong not in repr(err.value)
    assert wrong not in caplog.text and TEST_KEY not in caplog.text
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_keys_from_a_secrets_file(fake: FakeBinance, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.delenv(SECRET_ENV)
    f = tmp_path / "binance.toml"
    f.write_text(f'api_key = "{TEST_KEY}"\nsecret = "{TEST_SECRET}"\n')
    os.chmod(f, 0o600)

    async def body(c: CcxtClient) -> Any:
        return await c.fetch_balances()

    assert run(fake, body, secrets_file=f) == {"BTC": 1.0}


def test_markets_are_loaded_once_and_only_spot(fake: FakeBinance) -> None:
    async def body(c: CcxtClient) -> None:
        await c.connect()
        await c.fetch_open_orders()
        await c.fetch_balances()

    run(fake, body)
    paths = [r.path for r in fake.requests]
    assert paths.count("/api/v3/exchangeInfo") == 1
    assert not [p for p in paths if not p.startswith("/api/v3/")]  # no sapi/fapi/dapi


def test_unknown_symbol_fails_connect(fake: FakeBinance) -> None:
    async def go() -> None:
        client = CcxtClient(cfg(fake), ["XRP/BTC"])
        try:
            with pytest.raises(VenueRejected, match="no market XRP/BTC"):
                await client.connect()
        finally:
            await client.close()

    asyncio.run(go())


def test_make_exchange_settings() -> None:
    with pytest.raises(VenueRejected, match="no exchange"):
        make_exchange(CcxtConfig(exchange="no-such-exchange"))
    ex = make_exchange(CcxtConfig(sandbox=True, urls={"public": "http://127.0.0.1:9/api/v3"}))
    try:
        assert ex.enableRateLimit and ex.timeout == 10_000
        assert ex.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"  # override wins
        assert "testnet" in ex.urls["api"]["private"]  # sandbox switched the rest
        assert ex.options["fetchMarkets"]["types"] == ["spot"]
        assert ex.options["fetchCurrencies"] is False
    finally:
        asyncio.run(ex.close())


def test_order_status_mapping() -> None:
    base = {"id": "7", "clientOrderId": coid(1), "symbol": "ETH/BTC", "side": "sell",
            "amount": 2.0, "filled": 0.0}
    cases = [
        ({"status": "open"}, OrderStatus.ACCEPTED),
        ({"status": "open", "filled": 0.5, "cost": 0.05}, OrderStatus.PARTIALLY_FILLED),
        ({"status": "closed", "filled": 2.0, "average": 0.1}, OrderStatus.FILLED),
        ({"status": "canceled", "filled": 0.5, "cost": 0.05}, OrderStatus.CANCELLED),
        ({"status": "expired"}, OrderStatus.CANCELLED),
        ({"status": "rejected"}, OrderStatus.REJECTED),
        ({"status": None, "filled": 2.0}, OrderStatus.FILLED),
    ]
    for extra, want in cases:
        o = to_venue_order({**base, **extra}, "ETH/BTC")
        assert o.status is want, extra
        assert o.side is Side.SELL and not o.external
    partial = to_venue_order({**base, "status": "canceled", "filled": 0.5, "cost": 0.05},
                             "ETH/BTC")
    assert partial.filled == 0.5 and partial.avg_price == pytest.approx(0.1)
    ext = to_venue_order({**base, "clientOrderId": "web_x", "status": "open"}, "ETH/BTC")
    assert ext.external and ext.client_order_id == "ext-7"


def test_fills_of_external_orders_and_since(fake: FakeBinance) -> None:
    """A trade of an order placed elsewhere (web UI) is reported as ``ext-<order id>``;
    ``since_ns`` leaves out earlier trades."""
    ext, _ = fake.book.place("ETHBTC", "BUY", "MARKET", "0.500", None, "web_9f8e7d", None)

    async def body(c: CcxtClient) -> Any:
        every = await c.fetch_fills(["ETH/BTC"], 0)
        later = await c.fetch_fills(["ETH/BTC"], (ext.time_ms + 1) * 1_000_000)
        return every, later

    every, later = run(fake, body)
    (fill,) = every
    assert fill.client_order_id == f"ext-{ext.order_id}" and fill.quantity == 0.5
    assert fill.venue_order_id == str(ext.order_id)
    assert later == []


def test_fee_conversion() -> None:
    assert fee_in_quote({"cost": 0.002, "currency": "BTC"}, "ETH/BTC", 0.09) == 0.002
    assert fee_in_quote({"cost": 0.002, "currency": "ETH"}, "ETH/BTC", 0.09) == pytest.approx(
        0.00018)
    assert fee_in_quote({"cost": 0.01, "currency": "BNB"}, "ETH/BTC", 0.09) is None
    assert fee_in_quote(None, "ETH/BTC", 0.09) == 0.0
