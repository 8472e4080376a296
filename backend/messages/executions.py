"""Execution reports from the venue: order accepted, rejected, cancelled and filled."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backend.messages.enums import ExitReason, Side
from backend.messages.envelope import Finite, Message, Price, Qty


class OrderAccepted(Message):
    """The venue accepted an order."""

    type: Literal["order_accepted"] = "order_accepted"
    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    quantity: Qty


class OrderRejected(Message):
    """The venue or execution refused an order (reason given)."""

    type: Literal["order_rejected"] = "order_rejected"
    client_order_id: str
    symbol: str
    reason: str = Field(max_length=500)


class OrderCancelled(Message):
    """An open order was cancelled."""

    type: Literal["order_cancelled"] = "order_cancelled"
    client_order_id: str
    symbol: str
    reason: str = Field(max_length=500)


class OrderFilled(Message):
    """A (possibly partial) fill.

    ``price`` in quote per base, ``quantity`` in base units, ``fee`` in quote currency,
    ``realized_pnl`` in quote currency: gross P&L of the quantity this fill closed,
    before fees (0 for a fill that only opens or adds); net = sum(realized) - sum(fee).
    ``order_done``: the venue has now executed the whole ordered quantity (a fee taken in
    the base asset makes ``quantity`` smaller than what was ordered, so summing fills
    cannot tell).
    """

    type: Literal["order_filled"] = "order_filled"
    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    quantity: Qty
    price: Price
    fee: Qty
    realized_pnl: Finite = 0.0
    exit_reason: ExitReason = ExitReason.ENTRY
    bar_seq: int = Field(ge=0)
    fill_time: int = Field(ge=0)
    order_done: bool = False
