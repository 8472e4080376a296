"""Pre-trade messages: strategy signals and the compliance and risk decisions on them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backend.messages.enums import Side
from backend.messages.envelope import Finite, Message, Price, Qty


class SignalGenerated(Message):
    """A strategy wants to trade.  ``correlation_id == id`` (the chain starts here).

    ``entry_price`` is the reference price (last close); ``stop_loss`` and
    ``take_profit`` are absolute prices.  ``bar_seq``/``bar_time`` identify the bar
    the signal was computed on.
    """

    type: Literal["signal_generated"] = "signal_generated"
    symbol: str = Field(min_length=1, max_length=32)
    side: Side
    confidence: float = Field(ge=0.0, le=1.0)
    entry_price: Price
    stop_loss: Price
    take_profit: Price
    reason: str = Field(max_length=500)
    strategy: str = Field(min_length=1, max_length=64)
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    bar_seq: int = Field(ge=0)
    bar_time: int = Field(ge=0)
    #: Market regime at the bar (``backend.marketdata.regime``: ``trending_up``, ``trending_down``,
    #: ``ranging``, each with ``/high_vol`` or ``/low_vol``), ``""`` when not computed.
    regime: str = Field(default="", max_length=48)


class ComplianceDecided(Message):
    """Compliance approved (on ``signals:approved``) or rejected (``signals:rejected``)."""

    type: Literal["compliance_decided"] = "compliance_decided"
    approved: bool
    rule: str = Field(max_length=64)  # rule that decided ("ok" when approved)
    reason: str = Field(max_length=500)
    signal: SignalGenerated


class RiskDecided(Message):
    """Risk's decision on an approved signal; rejections go to ``signals:rejected``.

    ``quantity`` in base units, ``notional`` in quote currency (0 when rejected).
    """

    type: Literal["risk_decided"] = "risk_decided"
    approved: bool
    rule: str = Field(max_length=64)
    reason: str = Field(max_length=500)
    signal: SignalGenerated
    quantity: Qty = 0.0
    notional: Qty = 0.0
    equity: Finite = 0.0
