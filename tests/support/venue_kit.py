"""Shared helpers of the LiveVenue unit tests: a fake broker venue on fakeredis with fast
UNKNOWN-resolution timings, orders, bars, a transaction commit."""

from __future__ import annotations

import asyncio

from backend.messages import BarClosed, Side, SubmitOrder
from backend.venues.live import LiveVenue
from backend.venues.placement import MemoryJournal, PlacerTiming
from tests.support.fakebroker import FakeBroker

SYM = "ETH/BTC"
T0 = 1_700_000_000_000_000_000
BAR = 300_000_000_000


def order(coid: str = "tm-o-1", side: Side = Side.BUY, qty: float = 2.0, sl: float | None = None,
          tp: float | None = None, reduce_only: bool = False) -> SubmitOrder:
    return SubmitOrder(source="risk", correlation_id=f"sig-{coid}", client_order_id=coid,
                       symbol=SYM, side=side, quantity=qty, stop_loss=sl, take_profit=tp,
                       reduce_only=reduce_only, signal_id=f"sig-{coid}", bar_seq=1)


def bar(seq: int, o: float, h: float, low: float, c: float) -> BarClosed:
    return BarClosed(source="md", symbol=SYM, open_time=T0 + seq * BAR, open=o, high=h, low=low,
                     close=c, volume=1.0, seq=seq)


async def commit(venue: LiveVenue, redis) -> None:  # noqa: ANN001
    pipe = redis.pipeline(transaction=True)
    venue.stage(pipe)
    await pipe.execute()
    venue.commit()


#: Fast UNKNOWN resolution for tests (seconds).
TIMING = PlacerTiming(call_timeout_s=1.0, backoff_s=0.01, backoff_max_s=0.05, margin_s=0.05,
                      window_s=0.3, unreachable_attempts=3)


def live(broker: FakeBroker, redis, journal: MemoryJournal | None = None,  # noqa: ANN001
         **kw) -> LiveVenue:  # noqa: ANN003
    return LiveVenue(broker, redis, symbols=[SYM, "LTC/BTC"], quote_currency="BTC",
                     journal=journal or MemoryJournal(), timing=TIMING, **kw)


async def loaded(redis, broker: FakeBroker | None = None, **kw  # noqa: ANN001, ANN003
                 ) -> tuple[LiveVenue, FakeBroker]:
    broker = broker or FakeBroker(prices={SYM: 0.1, "LTC/BTC": 0.01})
    venue = live(broker, redis, **kw)
    await venue.load()
    return venue, broker


async def submit(venue: LiveVenue, o: SubmitOrder, t: int):  # noqa: ANN201
    """Place ``o``; the order's own event (the last one)."""
    return (await venue.place(o, t))[-1]


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)
