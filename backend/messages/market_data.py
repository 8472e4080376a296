"""Market data messages: the closed OHLCV bar (:class:`BarClosed`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backend.messages.envelope import Message, Price, Qty


class BarClosed(Message):
    """One OHLCV candle, published when it closes.

    ``seq`` is the replay's global sequence number (strictly increasing across all
    symbols); downstream agents use it to order work deterministically.
    ``open_time`` is the bar's open time in ns (UTC).  ``epoch`` is the deployment epoch
    of the sequence (kept in the database, one more each time a sequence starts afresh,
    e.g. after Redis lost its data): ``(epoch, seq)`` never repeats for the life of the
    database, and neither do the signal and client order ids derived from it.
    """

    type: Literal["bar_closed"] = "bar_closed"
    symbol: str = Field(min_length=1, max_length=32)
    timeframe: str = "5m"
    open_time: int = Field(ge=0)
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Qty
    seq: int = Field(ge=0)
    epoch: int = Field(default=1, ge=1)
