"""The paper account as pydantic models: the book, its positions and resting orders.

:class:`PaperBook` is the whole account the matching engine (:mod:`backend.venues.paper.engine`)
reads and returns (persisted as JSON); :class:`MarkedPositions` is the mix-in that reads marks
and positions the same way for the paper book and a live venue's ledger
(:mod:`backend.venues.ledger`).

Units: prices quote/base, quantities base units (positions signed), cash, fees and
notional in quote currency, times ns since the Unix epoch (UTC).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from backend.messages import Side

__all__ = ["MarkedPositions", "PaperBook", "PaperOrder", "PaperPosition"]


class PaperOrder(BaseModel):
    """An accepted market order resting until the next bar of its symbol.

    ``submitted_seq`` orders fills within a bar; ``bar_seq`` is the bar the order was
    decided on (it fills only on a later bar of its symbol).
    """

    model_config = ConfigDict(frozen=True)

    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    reduce_only: bool = False
    stop_loss: float | None = None
    take_profit: float | None = None
    signal_id: str = ""
    submitted_seq: int = 0
    bar_seq: int = 0
    correlation_id: str = ""
    ref_price: float = 0.0


class PaperPosition(BaseModel):
    """Net position of one symbol; stays in the book (quantity 0) once flat.

    ``realized_pnl`` is the symbol's cumulative gross realized P&L (quote currency);
    ``entry_coid``/``correlation_id`` belong to the order that opened the position and
    name its bracket exits (``<entry_coid>-sl``, ``-tp``, ``-flat``).
    """

    model_config = ConfigDict(frozen=True)

    symbol: str
    quantity: float = 0.0
    avg_price: float = 0.0
    stop_loss: float | None = None
    take_profit: float | None = None
    realized_pnl: float = 0.0
    entry_coid: str = ""
    correlation_id: str = ""


class _PositionLike(Protocol):
    """What :class:`MarkedPositions` reads of a position (base units, quote/base)."""

    @property
    def quantity(self) -> float: ...

    @property
    def avg_price(self) -> float: ...


class _MarkedBook(Protocol):
    """The attributes a class mixing in :class:`MarkedPositions` must have."""

    @property
    def positions(self) -> Mapping[str, _PositionLike]: ...

    @property
    def marks(self) -> Mapping[str, float]: ...

    def mark(self, symbol: str) -> float: ...


class MarkedPositions:
    """Marks and positions read the same way by the paper book and a live venue's ledger.

    Mixed into pydantic models that have ``positions: dict[str, <position with quantity,
    avg_price>]`` and ``marks: dict[str, float]`` (quote/base).
    """

    def mark(self: _MarkedBook, symbol: str) -> float:
        """Last mark of ``symbol`` (its close), else the position's average price."""
        m = self.marks.get(symbol)
        if m is not None:
            return m
        pos = self.positions.get(symbol)
        return pos.avg_price if pos is not None else 0.0

    def position_qty(self: _MarkedBook, symbol: str) -> float:
        """Signed position of ``symbol`` in base units (0.0 if none)."""
        pos = self.positions.get(symbol)
        return pos.quantity if pos is not None else 0.0

    def exposure(self: _MarkedBook) -> float:
        """Gross exposure: ``sum(|quantity * mark|)`` (quote currency)."""
        return sum(abs(p.quantity * self.mark(s)) for s, p in self.positions.items())


class PaperBook(MarkedPositions, BaseModel):
    """The whole paper account (persisted as JSON: ``model_dump(mode="json")``).

    ``known_orders`` maps every client order id ever seen (bracket exits included) to
    its status (:class:`OrderStatus` value); ``day_start_equity`` and
    ``traded_notional_by_day`` are keyed by UTC day index (``ts // 86_400e9``);
    ``last_bar_seq`` is the last bar seq processed per symbol (replays are ignored).
    """

    cash: float
    positions: dict[str, PaperPosition] = Field(default_factory=dict)
    open_orders: dict[str, PaperOrder] = Field(default_factory=dict)
    known_orders: dict[str, str] = Field(default_factory=dict)
    reject_reasons: dict[str, str] = Field(default_factory=dict)
    marks: dict[str, float] = Field(default_factory=dict)
    last_bar_seq: dict[str, int] = Field(default_factory=dict)
    last_bar_time: int = 0  # open time of the latest bar seen, ns UTC
    order_seq: int = 0
    fill_seq: int = 0
    fees_paid: float = 0.0
    realized_pnl: float = 0.0
    traded_notional_by_day: dict[int, float] = Field(default_factory=dict)
    day_start_equity: dict[int, float] = Field(default_factory=dict)
    current_day: int = -1

    @classmethod
    def new(cls, initial_cash: float) -> PaperBook:
        """An empty account holding ``initial_cash`` (quote currency)."""
        return cls(cash=initial_cash)

    def equity(self) -> float:
        """Mark-to-market equity: ``cash + sum(quantity * mark)`` (quote currency)."""
        return self.cash + sum(p.quantity * self.mark(s) for s, p in self.positions.items())

    def start_equity(self, day: int) -> float:
        """Equity at the first bar of UTC ``day`` (current equity if not recorded)."""
        return self.day_start_equity.get(day, self.equity())

    def traded_notional(self, day: int) -> float:
        """Notional traded during UTC ``day`` (quote currency)."""
        return self.traded_notional_by_day.get(day, 0.0)
