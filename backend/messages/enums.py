"""Trading enumerations on the wire: order side, order status and exit reason."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    """Order or signal side."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL."""
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        """The other side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderStatus(StrEnum):
    """Life cycle of an order.  UNKNOWN = sent but outcome not known (timeout)."""

    NEW = "NEW"  # intent persisted, not yet acknowledged by the venue
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


#: Statuses of an order that may still be working at the venue (not final).
NON_FINAL_STATUSES: tuple[str, ...] = (
    OrderStatus.NEW.value, OrderStatus.UNKNOWN.value, OrderStatus.ACCEPTED.value,
)


class ExitReason(StrEnum):
    """Why a fill happened."""

    ENTRY = "entry"
    SIGNAL = "signal"  # closed by an opposite signal
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    FLATTEN = "flatten"  # kill switch / end of replay
