"""The portfolio as the risk rules see it: positions and equity marked at a bar (pure).

Units: prices in quote currency per base unit, quantities in base units (signed: > 0
long, < 0 short), notional, cash and equity in quote currency, times in ns since the Unix
epoch (UTC).  A :class:`PortfolioView` is built from the execution agent's last
:class:`~backend.messages.PortfolioMarked` (:mod:`agents.portfolio_follower`) or by the
paper venue in a backtest; :mod:`backend.risk.rules` and :mod:`backend.risk.breaker`
decide on it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from backend.channels import compact_symbol

__all__ = ["PortfolioView", "PositionView"]


class PositionView(BaseModel):
    """One position as risk sees it.

    Attributes
    ----------
    quantity
        Signed size in base units (> 0 long, < 0 short).
    avg_price
        Average entry price (quote/base).
    mark
        Last mark price (quote/base).
    """

    quantity: float
    avg_price: float
    mark: float


class PortfolioView(BaseModel):
    """The execution's portfolio after a bar (quote currency unless noted).

    Attributes
    ----------
    bar_seq, bar_time
        The bar this view was marked at (``bar_time`` ns, UTC).
    cash
        Free cash.
    equity
        Mark-to-market equity: cash + sum(quantity * mark).
    positions
        Symbol as in messages (e.g. ``"ETH/BTC"``) -> position.
    traded_notional_today
        Notional traded during UTC day ``day``.
    day
        UTC day index (``bar_time // 86_400e9``).
    day_start_equity
        Equity at the start of UTC day ``day``.
    """

    bar_seq: int = 0
    bar_time: int = 0
    cash: float
    equity: float
    positions: dict[str, PositionView] = Field(default_factory=dict)
    traded_notional_today: float = 0.0
    day: int = 0
    day_start_equity: float = 0.0

    def position(self, symbol: str) -> PositionView | None:
        """The position of ``symbol`` (exact key first, then compact-symbol match)."""
        pos = self.positions.get(symbol)
        if pos is not None:
            return pos
        key = compact_symbol(symbol)
        for sym, p in self.positions.items():
            if compact_symbol(sym) == key:
                return p
        return None

    def quantity(self, symbol: str) -> float:
        """Signed position of ``symbol`` in base units (0.0 if none)."""
        pos = self.position(symbol)
        return pos.quantity if pos is not None else 0.0

    def exposure(self, symbol: str) -> float:
        """Absolute notional of ``symbol``'s position at its mark: ``|qty * mark|``."""
        pos = self.position(symbol)
        return abs(pos.quantity * pos.mark) if pos is not None else 0.0

    def traded_notional_on(self, day: int) -> float:
        """Notional traded on UTC ``day`` (0 if this view is of another day)."""
        return self.traded_notional_today if self.day == day else 0.0

    def total_exposure(self) -> float:
        """Sum of the absolute notionals of all positions (quote currency)."""
        return sum(abs(p.quantity * p.mark) for p in self.positions.values())
