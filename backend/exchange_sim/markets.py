"""The simulated exchange's markets: candles, market clock, last prices, klines.

Market clock
    The exchange's "now" for market data is a time in the data (ms): bars with
    ``open_time + timeframe <= clock`` are closed; the bar with ``open_time <= clock <
    open_time + timeframe`` is in progress (served by ``klines`` as a partial candle, as
    Binance does).  The clock starts ``start_bar`` bars after the first bar and moves by
    :meth:`Markets.move_clock` or, with ``bars_per_s``, by one bar every ``1 / bars_per_s``
    s of wall time (capped at the end of the data).

:class:`backend.exchange_sim.book.Book` builds the account and the orders on top of it.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

from backend.exchange_sim.model import FILTERS, TF_MS, BinanceError, Market, f8
from backend.marketdata.candles import load_dir

D = Decimal


class Markets:
    """Candles of every simulated market and the market clock.

    Parameters
    ----------
    data_dir : pathlib.Path
        Directory of ``BASE_QUOTE-<timeframe>.csv`` candle files.
    symbols : list of str
        ``BASE/QUOTE`` markets to serve (each needs its file).
    timeframe : str
        Candle length: ``1m``, ``5m``, ``15m`` or ``1h``.
    start_bar : int
        Bars after the first bar the market clock starts at.
    bars_per_s : float, optional
        Bars the clock moves per second of wall time (``None``/0: only on request).

    Raises
    ------
    backend.marketdata.candles.DataError
        The data directory or a symbol's file is missing or invalid.
    ValueError
        An unknown timeframe, a negative ``start_bar`` or ``bars_per_s``.
    """

    def __init__(self, data_dir: Path, symbols: list[str], *, timeframe: str = "5m",
                 start_bar: int = 60, bars_per_s: float | None = None) -> None:
        if timeframe not in TF_MS:
            raise ValueError(f"timeframe must be one of {', '.join(TF_MS)}, not {timeframe!r}")
        if start_bar < 0 or (bars_per_s is not None and bars_per_s < 0):
            raise ValueError("start_bar and bars_per_s must be >= 0")
        #: The simulator's one lock (re-entrant), for the markets and everything built on them.
        self.lock = threading.RLock()
        self.tf_ms = TF_MS[timeframe]
        self.markets: dict[str, Market] = {}
        for sym, c in load_dir(data_dir, symbols, timeframe).items():
            base, quote = sym.split("/")
            self.markets[base + quote] = Market(
                sym, base, quote, c.time // 1_000_000, c.open, c.high, c.low, c.close,
                c.volume, FILTERS.get(sym, FILTERS["ETH/BTC"]),
            )
        first = min(int(m.time[0]) for m in self.markets.values())
        self.end_ms = max(int(m.time[-1]) for m in self.markets.values()) + self.tf_ms
        self._clock0 = first + start_bar * self.tf_ms
        self._bars_per_s = bars_per_s
        self._t0 = time.monotonic()

    def clock_ms(self) -> int:
        """The market clock (ms, data time)."""
        with self.lock:
            t = self._clock0
            if self._bars_per_s:
                t += int((time.monotonic() - self._t0) * self._bars_per_s) * self.tf_ms
            return min(t, self.end_ms)

    def move_clock(self, bars: int) -> int:
        """Move the market clock ``bars`` bars on; returns the new clock (ms)."""
        with self.lock:
            self._clock0 += bars * self.tf_ms
            return self.clock_ms()

    def market(self, symbol_id: str | None) -> Market:
        """The market ``symbol_id`` (-1121 if unknown)."""
        if symbol_id not in self.markets:
            raise BinanceError(-1121, "Invalid symbol.")
        return self.markets[symbol_id]

    def closed_count(self, m: Market, clock: int | None = None) -> int:
        """How many of ``m``'s bars are closed at ``clock`` (ms; default now)."""
        t = self.clock_ms() if clock is None else clock
        return int(np.searchsorted(m.time, t - self.tf_ms, side="right"))

    def price(self, symbol_id: str) -> Decimal:
        """Current price (quote/base): close of the last closed bar (the first open before
        any)."""
        m = self.markets[symbol_id]
        n = self.closed_count(m)
        return D(str(float(m.close[n - 1] if n else m.open[0])))

    def klines(self, symbol_id: str, start: int | None, end: int | None, limit: int) -> list:
        """Binance kline rows: closed bars plus the bar in progress (partial: O=H=L=C=open,
        volume 0), oldest first, ``startTime <= open time <= endTime`` (ms)."""
        m = self.markets[symbol_id]
        clock = self.clock_ms()
        n = int(np.searchsorted(m.time, clock, side="right"))  # bars opened by now
        lo = 0 if start is None else int(np.searchsorted(m.time, start, side="left"))
        hi = n if end is None else min(n, int(np.searchsorted(m.time, end, side="right")))
        rows = []
        for i in range(lo, min(hi, lo + limit)):
            t = int(m.time[i])
            closed = t + self.tf_ms <= clock
            o = float(m.open[i])
            h, lw, c, v = ((float(m.high[i]), float(m.low[i]), float(m.close[i]),
                            float(m.volume[i])) if closed else (o, o, o, 0.0))
            rows.append([t, f8(o), f8(h), f8(lw), f8(c), f8(v), t + self.tf_ms - 1,
                         f8(D(str(v)) * D(str(c))), 10, "0.00000000", "0.00000000", "0"])
        return rows
