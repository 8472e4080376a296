"""Recent bar closes per symbol: a bounded in-memory history and readers of ``market_data``.

The VaR limit (:mod:`backend.risk.var_limit`) and the risk analytics need each symbol's
recent closes.  Bars are not stored in the database; the ``market_data`` stream holds
them (capped at ``stream_maxlen`` entries), so:

* :class:`CloseHistory` keeps the last ``maxlen`` ``(open_time, close)`` pairs of every
  symbol in bounded deques; the in-process replay (:mod:`backend.mesh.simulate`) appends every
  bar as it goes, the risk agent appends the bars it reads from the stream;
* :func:`read_bars_after` reads the stream forward from an entry id up to a bar ``seq``
  (the risk agent's incremental read after each portfolio mark);
* :func:`load_history` rebuilds a history from the newest entries backwards (a risk
  agent that (re)starts, the control plane's ``/api/risk``).

Both give the same content for the same ``until_seq``: the last ``maxlen`` closes of
every symbol among the bars with ``seq <= until_seq``.  Units: ``open_time`` ns UTC,
closes in quote currency per base unit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import orjson
from redis.asyncio import Redis

from backend import channels
from backend.bus import DATA_FIELD
from backend.bus import as_text as _s

#: Stream entries per XRANGE / XREVRANGE call.
READ_CHUNK = 2000

Series = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True, slots=True)
class BarPoint:
    """One bar as the history needs it (from a ``BarClosed`` payload)."""

    seq: int
    symbol: str
    open_time: int
    close: float


class CloseHistory:
    """The last ``maxlen`` ``(open_time, close)`` of every symbol (bounded deques).

    Parameters
    ----------
    maxlen
        Closes kept per symbol (>= 2).
    """

    def __init__(self, maxlen: int) -> None:
        self.maxlen = max(int(maxlen), 2)
        self._data: dict[str, deque[tuple[int, float]]] = {}
        #: Highest bar seq appended (0 = none).
        self.last_seq = 0

    def append(self, symbol: str, open_time: int, close: float, seq: int = 0) -> None:
        """Add one bar (a bar of a time already held for the symbol is ignored)."""
        d = self._data.get(symbol)
        if d is None:
            d = self._data[symbol] = deque(maxlen=self.maxlen)
        if d and d[-1][0] >= open_time:
            return
        d.append((int(open_time), float(close)))
        self.last_seq = max(self.last_seq, int(seq))

    def extend(self, bars: Iterable[BarPoint]) -> None:
        """Append bars oldest first."""
        for b in bars:
            self.append(b.symbol, b.open_time, b.close, b.seq)

    def __len__(self) -> int:
        return sum(len(d) for d in self._data.values())

    def symbols(self) -> list[str]:
        """Symbols with at least one close."""
        return sorted(self._data)

    def series(self) -> dict[str, Series]:
        """``symbol -> (open_times int64 (n,), closes float64 (n,))``, oldest first."""
        out = {}
        for sym, d in self._data.items():
            arr = np.array(d, dtype=float).reshape(-1, 2)
            out[sym] = (arr[:, 0].astype(np.int64), arr[:, 1].copy())
        return out


def _bar(raw: bytes | None) -> BarPoint | None:
    """The bar of a ``market_data`` entry payload, ``None`` for anything else."""
    if not raw:
        return None
    try:
        d = orjson.loads(raw)
        if d.get("type") != "bar_closed":
            return None
        return BarPoint(int(d["seq"]), str(d["symbol"]), int(d["open_time"]), float(d["close"]))
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
        return None


async def read_bars_after(
    redis: Redis, cursor: str, until_seq: int, chunk: int = READ_CHUNK,
) -> tuple[list[BarPoint], str]:
    """Bars after entry ``cursor`` with ``seq <= until_seq``, and the new cursor.

    Reads forward from the entry after ``cursor`` (``"0"``: the stream's start) and stops
    at the first bar with ``seq > until_seq``, which stays unread (the cursor is the last
    entry consumed).  Entries that are not bars are skipped.
    """
    out: list[BarPoint] = []
    start = "-" if cursor in ("", "0", "0-0") else "(" + cursor
    while True:
        entries = await redis.xrange(channels.MARKET_DATA, start, "+", count=chunk)
        for eid, fields in entries:
            bar = _bar((fields or {}).get(DATA_FIELD))
            if bar is not None and bar.seq > until_seq:
                return out, cursor
            cursor = _s(eid)
            if bar is not None:
                out.append(bar)
        if len(entries) < chunk:
            return out, cursor
        start = "(" + cursor


async def load_history(
    redis: Redis, maxlen: int, symbols: Iterable[str], until_seq: int | None = None,
    chunk: int = READ_CHUNK,
) -> tuple[CloseHistory, str]:
    """A :class:`CloseHistory` of the newest bars with ``seq <= until_seq`` (None: all).

    Reads backwards until every symbol in ``symbols`` has ``maxlen`` closes, or at most
    ``4 * maxlen * len(symbols)`` entries, or the stream's start.  Returns the history
    and the id of the newest entry it covers (the cursor for :func:`read_bars_after`;
    ``"0"`` if none).
    """
    want = set(symbols)
    budget = 4 * max(int(maxlen), 2) * max(len(want), 1)
    got: dict[str, list[BarPoint]] = {}
    cursor = ""
    end = "+"
    scanned = 0
    while scanned < budget:
        entries = await redis.xrevrange(channels.MARKET_DATA, end, "-", count=chunk)
        for eid, fields in entries:
            scanned += 1
            bar = _bar((fields or {}).get(DATA_FIELD))
            if bar is not None and until_seq is not None and bar.seq > until_seq:
                continue
            if not cursor:
                cursor = _s(eid)
            if bar is None:
                continue
            lst = got.setdefault(bar.symbol, [])
            if len(lst) < maxlen:
                lst.append(bar)
        done = want and all(len(got.get(s, ())) >= maxlen for s in want)
        if len(entries) < chunk or done:
            break
        end = "(" + _s(entries[-1][0])
    hist = CloseHistory(maxlen)
    for bars in got.values():
        hist.extend(reversed(bars))
    return hist, cursor or "0"
