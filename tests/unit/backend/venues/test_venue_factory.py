"""make_venue: paper by default, LiveVenue over an injected or test-hook client, clear
errors for a kind that cannot be built; the paper adapter's venue questions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.messages import OrderStatus, Side, SubmitOrder
from backend.settings import Settings
from backend.venues import factory
from backend.venues.factory import TEST_BROKER_ENV, VenueConfigError, make_venue
from backend.venues.live import LiveVenue
from backend.venues.paper.adapter import PaperVenue
from tests.support.agentproc import bar
from tests.support.fakebroker import STATE_ENV, FakeBroker


def _settings(symbols: tuple[str, ...] = ("ETH/BTC",), **venue: object) -> Settings:
    return Settings(venue=venue, symbols=list(symbols))  # type: ignore[arg-type]


def test_paper_is_the_default(fake_redis, monkeypatch) -> None:
    monkeypatch.delenv(TEST_BROKER_ENV, raising=False)
    venue = make_venue(_settings(), fake_redis)
    assert isinstance(venue, PaperVenue) and venue.polls is False


def test_an_injected_client_makes_a_live_venue(fake_redis) -> None:
    venue = make_venue(_settings(("ETH/USDT",), quote_currency="USDT"), fake_redis,
                       client=FakeBroker())
    assert isinstance(venue, LiveVenue) and venue.name == "fake" and venue.quote == "USDT"
    assert make_venue(_settings(), fake_redis, client=FakeBroker()).quote == "BTC"  # ETH/BTC


def test_the_test_hook_builds_the_client_only_when_set(fake_redis, monkeypatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setenv(TEST_BROKER_ENV, "tests.support.fakebroker:from_env")
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "broker.json"))
    venue = make_venue(_settings(), fake_redis)
    assert isinstance(venue, LiveVenue) and (tmp_path / "broker.json").exists()
    monkeypatch.setenv(TEST_BROKER_ENV, "no_such_module:make")
    with pytest.raises(VenueConfigError, match="no_such_module"):
        make_venue(_settings(), fake_redis)


def test_a_kind_whose_module_is_missing_fails_clearly(monkeypatch) -> None:
    monkeypatch.setitem(factory._KINDS, "ibkr", ("backend.venues.no_such_client", "X", "ibkr",
                                                 "spot"))
    with pytest.raises(VenueConfigError, match="not available here"):
        factory.make_client(_settings(kind="ibkr"))
    with pytest.raises(VenueConfigError, match="no broker client"):
        factory.make_client(_settings())


def test_live_kinds_map_to_their_clients() -> None:
    client = factory.make_client(_settings(kind="ibkr"))  # no connection before connect()
    assert type(client).__name__ == "IbClient" and client.name == "ibkr"


def _order(coid: str, qty: float = 1.0) -> SubmitOrder:
    return SubmitOrder(source="risk", correlation_id="sig", client_order_id=coid,
                       symbol="ETH/BTC", side=Side.BUY, quantity=qty, signal_id="sig",
                       bar_seq=1)


def test_paper_adapter_answers_by_client_order_id(fake_redis) -> None:
    async def go() -> None:
        from backend.settings import PaperConfig

        venue = PaperVenue(fake_redis, PaperConfig(initial_cash=1.0))
        await venue.load()

        async def commit() -> None:
            pipe = fake_redis.pipeline(transaction=True)
            venue.stage(pipe)
            await pipe.execute()
            venue.commit()

        await venue.submit(_order("a", 2.0), 1)
        await commit()
        assert await venue.fetch_order("zzz", "ETH/BTC") is None
        vo = await venue.fetch_order("a", "ETH/BTC")
        assert vo is not None and vo.status is OrderStatus.ACCEPTED and vo.quantity == 2.0
        assert [o.client_order_id for o in await venue.open_venue_orders()] == ["a"]
        await venue.on_bar(bar(1))
        await venue.on_bar(bar(2))
        await commit()
        again = PaperVenue(fake_redis, PaperConfig(initial_cash=1.0))  # from Redis
        await again.load()
        vo = await again.fetch_order("a", "ETH/BTC")
        assert vo is not None and vo.status is OrderStatus.FILLED and vo.filled == 2.0
        assert vo.avg_price == pytest.approx(0.1 * 1.0002)  # open + 2 bps slippage
        (fill,) = await again.fills_of(["a"])
        assert fill.client_order_id == "a" and await again.fills_of(["b"]) == []
        assert again.book_positions()["ETH/BTC"].quantity == 2.0
        assert await again.poll(5) == [] and await again.check_positions(5) == ([], [])
        assert again.fill_status("a") is OrderStatus.FILLED

    asyncio.run(go())
