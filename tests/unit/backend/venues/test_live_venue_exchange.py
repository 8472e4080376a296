"""The live venue through real ccxt against the exchange simulator behaving like Binance
spot (a reused ``newClientOrderId`` refused only while open, fees in the coins bought,
``recvWindow`` enforced): the issue-14 scenarios at the exchange the review reproduced
them on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from backend.exchange_sim import TEST_KEY, TEST_SECRET, ExchangeSim
from backend.messages import OrderAccepted, Side, SubmitOrder
from backend.venues.ccxt.client import CcxtClient
from backend.venues.config import CcxtConfig
from backend.venues.live import LiveVenue
from backend.venues.placement import PlacerTiming
from tests.support.helpers import eventually

SYM = "ETH/BTC"
KEY_ENV, SECRET_ENV = "TEST_SIM_KEY", "TEST_SIM_SECRET"
TIMING = PlacerTiming(call_timeout_s=5.0, backoff_s=0.1, backoff_max_s=0.4, margin_s=0.3,
                      window_s=2.0, unreachable_attempts=5)


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    monkeypatch.setenv(SECRET_ENV, TEST_SECRET)


def run(sim: ExchangeSim, body: Callable[[LiveVenue], Awaitable[Any]], fake_redis) -> Any:  # noqa: ANN001
    async def go() -> Any:
        cfg = CcxtConfig(urls=sim.ccxt_urls(), rate_limit_ms=1, timeout_ms=800,
                         api_key_env=KEY_ENV, secret_env=SECRET_ENV,
                         options={"recvWindow": 2000})
        venue = LiveVenue(CcxtClient(cfg, [SYM]), fake_redis, symbols=[SYM],
                          quote_currency="BTC", timing=TIMING)
        await venue.load()
        try:
            return await body(venue)
        finally:
            await venue.close()
    return asyncio.run(go())


def entry(coid: str, qty: float = 2.0, **kw: Any) -> SubmitOrder:
    return SubmitOrder(source="risk", correlation_id=coid, client_order_id=coid, symbol=SYM,
                       side=Side.BUY, quantity=qty, signal_id=coid, bar_seq=1, **kw)


def test_duplicate_orders_after_a_timeout_at_a_binance_like_exchange(fake_redis) -> None:
    """Every order creation lands 1.2 s late, after ccxt gave up (0.8 s), inside
    recvWindow (2 s): each is found and adopted, none sent twice (Binance would have
    filled a resend with the same id)."""
    with ExchangeSim(symbols=[SYM], dup_scope="open", fee_asset="base") as sim:
        sim.inject("late", "POST", "/api/v3/order", delay_s=1.2, count=3)

        async def body(venue: LiveVenue) -> list[Any]:
            return [(await venue.place(entry(f"tm-o-{i}", 0.5), i))[-1] for i in range(3)]

        acks = run(sim, body, fake_redis)
        assert all(isinstance(a, OrderAccepted) for a in acks)
        posted = [r.params["newClientOrderId"] for r in sim.requests_to("POST", "/api/v3/order")]
        assert sorted(posted) == ["tm-o-0", "tm-o-1", "tm-o-2"]  # each sent exactly once
        assert sorted(o.client_order_id for o in sim.orders()) == posted
        assert len(sim.trades()) == 3


def test_an_order_refused_for_its_age_is_sent_again_once(fake_redis) -> None:
    """Held past recvWindow, the request is refused when it arrives (-1021): after the
    window the order is known never to have landed, and it is sent again, once."""
    with ExchangeSim(symbols=[SYM], dup_scope="open") as sim:
        sim.inject("late", "POST", "/api/v3/order", delay_s=3.0)

        async def body(venue: LiveVenue) -> Any:
            return (await venue.place(entry("tm-o-x", 0.5), 1))[-1]

        assert isinstance(run(sim, body, fake_redis), OrderAccepted)
        first, resend = eventually(  # the held request arrives after the resend
            lambda: (r := sim.requests_to("POST", "/api/v3/order")) and r[0].outcome != "pending"
            and r, 10, message="the late request answered")
        assert first.error == -1021 and resend.outcome == "applied"
        assert [o.client_order_id for o in sim.orders()] == ["tm-o-x"]  # never twice


def test_base_asset_fee_and_protective_stop_at_a_binance_like_exchange(fake_redis) -> None:
    """A buy of 2.0 ETH holds 1.998 (the fee in coins); the protective STOP_LOSS rests for
    what the account holds (truncated to the step) and closes it when the market falls."""
    with ExchangeSim(symbols=[SYM], dup_scope="open", fee_asset="base") as sim:
        price = float(sim.book.price("ETHBTC"))

        async def body(venue: LiveVenue) -> Any:
            await venue.place(entry("tm-o-p", 2.0, stop_loss=price * 0.99), 1)
            await venue.poll(2)
            return venue

        venue = run(sim, body, fake_redis)
        held = venue._cur.positions[SYM].quantity
        assert held == pytest.approx(1.998)
        (stop,) = [o for o in sim.orders() if o.type == "STOP_LOSS"]
        assert stop.status == "NEW" and float(stop.orig_qty) == pytest.approx(1.998)
        assert stop.client_order_id.startswith("tm-p-")
        for _ in range(5000):  # the market clock moves on until a bar trades through it
            sim.advance(1)
            if [o for o in sim.orders() if o.type == "STOP_LOSS"][0].status != "NEW":
                break
        (stop,) = [o for o in sim.orders() if o.type == "STOP_LOSS"]
        assert stop.status == "FILLED" and sim.book.balances()["ETH"] == (0, 0)
