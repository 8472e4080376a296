"""REST body of one round-trip trade (``GET /api/trades``, the report, the dashboard).

Built by :func:`backend.performance.report.extract_trades`.  Times in ns UTC, prices in
quote currency per base unit, quantity in base units, P&L and fees in quote currency.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

__all__ = ["Trade"]


class Trade(BaseModel):
    """One round trip (or an open trade: ``exit_*`` are ``None``)."""

    symbol: str
    side: Literal["long", "short"]
    entry_time: int
    exit_time: int | None = None
    entry_bar_seq: int = 0
    exit_bar_seq: int | None = None
    entry_price: float
    exit_price: float | None = None
    quantity: float
    gross_pnl: float
    fees: float
    net_pnl: float
    return_on_notional: float | None
    exit_reason: str | None = None
    fills: int
