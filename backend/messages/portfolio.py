"""Position and portfolio messages: position changes and mark-to-market account state."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.messages.envelope import Finite, Message, Qty


class PositionChanged(Message):
    """Position after a fill.  ``quantity`` signed (base units), ``avg_price`` quote/base."""

    type: Literal["position_changed"] = "position_changed"
    symbol: str
    quantity: Finite
    avg_price: Qty
    realized_pnl: Finite


class PositionSnapshot(BaseModel):
    """One position inside a :class:`PortfolioMarked`: signed base units, quote prices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantity: Finite
    avg_price: Qty
    mark: Qty


class PortfolioMarked(Message):
    """Mark-to-market account state after the execution agent processed bar ``bar_seq``.

    ``cash``, ``equity`` (cash + positions at marks), ``exposure`` (sum of
    ``|qty * mark|``), ``day_start_equity`` (equity at the start of the UTC day
    ``day`` = ``bar_time // 86_400e9``) and ``traded_notional_today`` are in quote currency.
    """

    type: Literal["portfolio_marked"] = "portfolio_marked"
    bar_seq: int = Field(ge=0)
    bar_time: int = Field(ge=0)
    cash: Finite
    equity: Finite
    exposure: Qty
    day: int = Field(ge=0)
    day_start_equity: Finite
    traded_notional_today: Qty = 0.0
    positions: dict[str, PositionSnapshot] = Field(default_factory=dict)
