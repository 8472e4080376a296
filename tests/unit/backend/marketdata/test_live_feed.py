"""Live ccxt candles (backend.marketdata.live_feed) against the loopback fake Binance.

Closed candles only (the one in progress is held back until it closes, then emitted with
its final values), in (time, symbol) order, with increasing seq and no duplicates across
a restart from the saved cursor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest
from fakes.binance import FakeBinance

from backend.marketdata.candles import load_dir
from backend.marketdata.live_feed import CandleFeed, FeedCursor, timeframe_ms
from backend.messages import BarClosed
from backend.settings import ROOT
from backend.venues.broker import VenueUnavailable
from backend.venues.config import CcxtConfig

SYMBOLS = ["ETH/BTC", "LTC/BTC"]
TF = 300_000


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    with FakeBinance(symbols=SYMBOLS, start_bar=50) as f:
        yield f


def feed_cfg(fake: FakeBinance) -> CcxtConfig:
    # public endpoints only: no keys needed
    return CcxtConfig(urls=fake.ccxt_urls(), rate_limit_ms=1, timeout_ms=2000,
                      api_key_env="", secret_env="", password_env="")


class Session:
    """A feed plus the bars it emitted (as the market_data agent would publish them)."""

    def __init__(self, fake: FakeBinance, cursor: FeedCursor, history: int = 0) -> None:
        self.feed = CandleFeed(feed_cfg(fake), SYMBOLS, "5m", history)
        self.cursor = cursor
        self.bars: list[BarClosed] = []

    async def poll(self) -> list[BarClosed]:
        out = []
        for sym, row in await self.feed.poll(self.cursor):
            bar = self.feed.bar(sym, row, self.cursor.seq + 1)
            self.cursor.advance(bar)
            out.append(bar)
        self.bars += out
        return out


def csv_row(symbol: str, open_ms: int) -> tuple[float, ...]:
    c = load_dir(ROOT / "data" / "sample", [symbol])[symbol]
    (i,) = np.flatnonzero(c.time == open_ms * 1_000_000)
    return (float(c.open[i]), float(c.high[i]), float(c.low[i]), float(c.close[i]),
            float(c.volume[i]))


def test_only_closed_candles_in_order_and_none_twice_across_a_restart(
    fake: FakeBinance,
) -> None:
    async def go() -> tuple[list[BarClosed], list[list[BarClosed]], bytes]:
        s = Session(fake, FeedCursor(), history=5)
        rounds = [await s.poll()]  # 5 bars of history per symbol
        rounds.append(await s.poll())  # nothing new: the bar in progress is held back
        fake.book.advance(1)
        rounds.append(await s.poll())
        saved = s.cursor.to_json()
        await s.feed.close()
        # restart from the saved cursor
        fake.book.advance(3)
        s2 = Session(fake, FeedCursor.from_json(saved))
        rounds.append(await s2.poll())
        await s2.feed.close()
        return s.bars + s2.bars, rounds, saved

    bars, rounds, _ = asyncio.run(go())
    assert [len(r) for r in rounds] == [10, 0, 2, 6]
    clock = fake.book.clock_ms()
    assert [b.seq for b in bars] == list(range(1, len(bars) + 1))
    keys = [(b.symbol, b.open_time) for b in bars]
    assert len(keys) == len(set(keys))  # no duplicates
    order = [(b.open_time, SYMBOLS.index(b.symbol)) for b in bars]
    assert order == sorted(order)  # global (time, symbol) order
    for b in bars:
        open_ms = b.open_time // 1_000_000
        assert open_ms + TF <= clock  # closed
        # final values, not the partial candle the fake served while it was open
        assert (b.open, b.high, b.low, b.close, b.volume) == pytest.approx(
            csv_row(b.symbol, open_ms), rel=1e-7)
    last = {s: max(b.open_time for b in bars if b.symbol == s) // 1_000_000 for s in SYMBOLS}
    for s in SYMBOLS:  # up to the last closed bar of the clock, nothing later
        m = fake.book.markets[s.replace("/", "")]
        assert last[s] == int(m.time[fake.book.closed_count(m) - 1])


def test_fresh_feed_starts_at_the_next_close_and_catches_up_after_a_gap(
    fake: FakeBinance,
) -> None:
    async def go() -> list[int]:
        s = Session(fake, FeedCursor())
        counts = [len(await s.poll())]
        fake.book.advance(40)  # a 40-bar outage of the poller
        counts.append(len(await s.poll()))
        await s.feed.close()
        return counts

    assert asyncio.run(go()) == [0, 80]


def test_exchange_down_raises_unavailable_and_loses_nothing(fake: FakeBinance) -> None:
    async def go() -> list[int]:
        s = Session(fake, FeedCursor(), history=1)
        first = len(await s.poll())
        fake.book.advance(2)
        fake.inject("503", "GET", "/api/v3/klines")
        with pytest.raises(VenueUnavailable):
            await s.poll()
        second = len(await s.poll())
        await s.feed.close()
        return [first, second, len({(b.symbol, b.open_time) for b in s.bars})]

    assert asyncio.run(go()) == [2, 4, 6]


def test_cursor_round_trip_and_timeframes() -> None:
    c = FeedCursor(seq=9, last_open_ms={"ETH/BTC": 5}, emitted={"ETH/BTC": 3})
    assert FeedCursor.from_json(c.to_json()) == c
    assert FeedCursor.from_json(None, seq=4) == FeedCursor(seq=4)
    assert timeframe_ms("5m") == TF and timeframe_ms("1h") == 3_600_000
    with pytest.raises(ValueError, match="unsupported timeframe"):
        timeframe_ms("5x")
