"""Live candles through ccxt: REST polling of closed OHLCV bars, as ``BarClosed`` messages.

The market_data agent (``market_data_source = "ccxt"``) calls :meth:`CandleFeed.poll`
every ``venue.ccxt.poll_s`` seconds.  One poll:

1. asks the exchange for its time (``fetch_time``; the local clock where the exchange has
   no time endpoint) -- a candle is **closed** when ``open_time + timeframe <= that time``.
   Binance and most exchanges also return the candle in progress as the last row of
   ``fetch_ohlcv``; it is held back until it closes (then emitted with its final values);
2. fetches, per symbol, the candles after the symbol's cursor (``since = cursor + 1 ms``,
   1000 a page, more pages while they come full, e.g. after a downtime);
3. returns the new closed candles of every symbol merged in (open time, symbol order)
   order, as the replay does.

The cursor (:class:`FeedCursor`: last emitted open time per symbol, the global ``seq``,
candles emitted per symbol) is JSON the agent saves in the same Redis transaction as each
bar, so a restarted agent goes on with the next candle: nothing is repeated or skipped.
A fresh feed (no cursor) starts with the first candle that closes after it started, or
``history_bars`` closed candles earlier (indicator warm-up: strategies see them as bars
and may signal on them, so keep 0 when trading for real).

Guarantees: per symbol strictly increasing open times, a strictly increasing ``seq``, no
duplicates (also across restarts).  Global time order holds within a poll, and across
polls as long as the exchange serves every closed candle of every symbol at the time it
reports (a candle the exchange publishes late, after a newer candle of that symbol was
emitted, is dropped).  Websockets (``ccxt.pro``) are not implemented: ``websocket = true``
still polls (logged once).  Public trades (``fetch_trades``) are not used: the mesh's
strategies work on candles.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from backend.messages import BarClosed, now_ns, stable_id
from backend.venues.ccxt.client import CcxtClient
from backend.venues.config import CcxtConfig

__all__ = ["CandleFeed", "FeedCursor", "timeframe_ms"]

log = logging.getLogger(__name__)
_PAGE = 1000
_MAX_PAGES = 20  # per symbol and poll: a long catch-up continues on the next poll
_UNITS_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def timeframe_ms(timeframe: str) -> int:
    """``"5m"`` -> 300000 (ms).  Units: m, h, d, w."""
    try:
        return int(timeframe[:-1]) * _UNITS_MS[timeframe[-1]]
    except (KeyError, ValueError):
        raise ValueError(f"unsupported timeframe {timeframe!r} (e.g. 1m, 5m, 1h, 1d)") from None


@dataclass
class FeedCursor:
    """Where a live feed stands.

    Attributes
    ----------
    seq : int
        ``seq`` of the last bar emitted (all symbols).
    last_open_ms : dict of str to int
        Per symbol, open time (ms UTC) of the last candle emitted (or the start point).
    emitted : dict of str to int
        Candles emitted per symbol.
    """

    seq: int = 0
    last_open_ms: dict[str, int] = field(default_factory=dict)
    emitted: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """JSON for the agent's state key."""
        return orjson.dumps({"seq": self.seq, "last_open_ms": self.last_open_ms,
                             "emitted": self.emitted})

    @classmethod
    def from_json(cls, blob: bytes | str | None, seq: int = 0) -> FeedCursor:
        """Parse :meth:`to_json` output; ``None`` -> a fresh cursor at ``seq``."""
        if not blob:
            return cls(seq=seq)
        d = orjson.loads(blob)
        return cls(int(d.get("seq", seq)), {k: int(v) for k, v in d["last_open_ms"].items()},
                   {k: int(v) for k, v in d.get("emitted", {}).items()})

    def advance(self, bar: BarClosed) -> None:
        """Record ``bar`` as emitted."""
        self.seq = bar.seq
        self.last_open_ms[bar.symbol] = bar.open_time // 1_000_000
        self.emitted[bar.symbol] = self.emitted.get(bar.symbol, 0) + 1


class CandleFeed:
    """Polls closed candles of ``symbols`` from one ccxt exchange.

    Parameters
    ----------
    cfg : CcxtConfig
        Exchange id, urls, keys (not needed: public endpoints only), rate limiting.
    symbols : sequence of str
        ``BASE/QUOTE``.
    timeframe : str
        ccxt timeframe (``"5m"``).
    history_bars : int
        Closed candles before the start a fresh feed emits (warm-up).
    client : CcxtClient, optional
        Shares an exchange object (tests); default a new one.
    """

    def __init__(
        self, cfg: CcxtConfig, symbols: Sequence[str], timeframe: str,
        history_bars: int = 0, client: CcxtClient | None = None,
    ) -> None:
        self.symbols = list(symbols)
        self.timeframe = timeframe
        self.tf_ms = timeframe_ms(timeframe)
        self.history_bars = history_bars
        self.client = client or CcxtClient(cfg, symbols)
        if cfg.websocket:
            log.warning("ccxt websocket candles are not implemented; polling REST every %gs",
                        cfg.poll_s)

    async def close(self) -> None:
        """Release the HTTP session."""
        await self.client.close()

    async def server_time_ms(self) -> int:
        """The exchange's clock (ms), or the local one when it has no time endpoint."""
        ex = self.client.exchange
        if ex.has.get("fetchTime"):
            t = await self.client.call("fetch_time", lambda: ex.fetch_time())
            if t:
                return int(t)
        return int(time.time() * 1000)

    async def poll(self, cursor: FeedCursor) -> list[tuple[str, list[Any]]]:
        """New closed candles after ``cursor``: ``[(symbol, [t_ms, o, h, l, c, v]), ...]``
        in (open time, symbol order) order.  Sets the start point of symbols the cursor
        does not know yet (fresh feed).

        Raises
        ------
        VenueUnavailable
            The exchange is unreachable (nothing is lost: the next poll asks again).
        """
        await self.client.ensure_connected()
        now = await self.server_time_ms()
        out: list[tuple[int, int, str, list[Any]]] = []
        for k, sym in enumerate(self.symbols):
            if sym not in cursor.last_open_ms:
                last_closed_open = (now // self.tf_ms) * self.tf_ms - self.tf_ms
                cursor.last_open_ms[sym] = last_closed_open - self.history_bars * self.tf_ms
            after = cursor.last_open_ms[sym]
            for row in await self._closed_since(sym, after, now):
                out.append((int(row[0]), k, sym, row))
        out.sort(key=lambda x: (x[0], x[1]))
        return [(sym, row) for _, _, sym, row in out]

    async def _closed_since(self, symbol: str, after_ms: int, now_ms: int) -> list[list[Any]]:
        ex = self.client.exchange
        rows: list[list[Any]] = []
        last = after_ms
        for _ in range(_MAX_PAGES):
            page = await self.client.call(
                f"fetch_ohlcv {symbol}",
                lambda s=last: ex.fetch_ohlcv(symbol, self.timeframe, s + 1, _PAGE),
            ) or []
            new = [r for r in page if int(r[0]) > last and int(r[0]) + self.tf_ms <= now_ms]
            rows.extend(new)
            if new:
                last = int(new[-1][0])
            if len(page) < _PAGE or not new:
                break
        return rows

    def bar(self, symbol: str, row: list[Any], seq: int) -> BarClosed:
        """One candle as the ``seq``-th ``BarClosed`` (id from symbol and open time, as
        the replay's)."""
        t_ns = int(row[0]) * 1_000_000
        bar_id = stable_id("bar", symbol, t_ns)
        return BarClosed(
            id=bar_id, ts=now_ns(), source="market_data", correlation_id=bar_id,
            symbol=symbol, timeframe=self.timeframe, open_time=t_ns, open=float(row[1]),
            high=float(row[2]), low=float(row[3]), close=float(row[4]),
            volume=float(row[5] or 0.0), seq=seq,
        )

