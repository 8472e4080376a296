"""Order commands to execution: submit, cancel all (kill switch), resolve a halted symbol."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.messages.enums import Side
from backend.messages.envelope import Finite, Message, Price, Qty


class SubmitOrder(Message):
    """Command to execution: place a market order.

    ``client_order_id`` is derived deterministically from the signal id.
    ``reduce_only`` orders only close an existing position; ``stop_loss`` and
    ``take_profit`` (absolute prices) attach a bracket to the resulting position.
    ``ref_price`` is the price it was sized at; ``expires_at`` (ns) the wall-clock time
    after which execution refuses it if it was never sent (a queue that held it too long).
    """

    type: Literal["submit_order"] = "submit_order"
    client_order_id: str = Field(min_length=1, max_length=64)
    symbol: str = Field(min_length=1, max_length=32)
    side: Side
    quantity: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    order_type: Literal["MARKET"] = "MARKET"
    reduce_only: bool = False
    stop_loss: Price | None = None
    take_profit: Price | None = None
    signal_id: str = Field(min_length=1, max_length=64)
    bar_seq: int = Field(ge=0)
    #: The price the order was sized at (the signal's entry price, quote/base).
    ref_price: Price | None = None
    #: Wall-clock time (ns UTC) after which an order never sent is refused, not sent.
    expires_at: int | None = Field(default=None, ge=0)


class CancelAllOrders(Message):
    """Command to execution: cancel every open order; with ``flatten`` (the kill switch)
    also close every position with market orders and report a :class:`KillSwitchExecuted`;
    with ``entries_only`` (a circuit-breaker trip) only our orders that are not
    reduce-only (exits and protective stops stay).
    """

    type: Literal["cancel_all_orders"] = "cancel_all_orders"
    reason: str = Field(max_length=500)
    flatten: bool = False
    entries_only: bool = False


class ResolveSymbol(Message):
    """Command to execution: a person resolved what halted ``symbol`` (on ``orders``).

    ``not_placed``: client order ids left ``UNKNOWN`` that the person confirmed are not
    at the venue (looked up once more; found -> adopted, else ``REJECTED``);
    ``adopt_venue_position``: set the books' position to what the venue holds.
    Execution then clears the symbol's halt if nothing unresolved is left, and answers
    with an :class:`AuditRecorded` (action ``symbol_resumed`` or ``symbol_still_halted``)
    whose ``correlation_id`` is this command's id.
    """

    type: Literal["resolve_symbol"] = "resolve_symbol"
    symbol: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=500)
    actor: str = Field(default="operator", max_length=64)
    adopt_venue_position: bool = False
    not_placed: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=100)


class ClosedPosition(BaseModel):
    """A position the kill switch closed: signed quantity before (base units), fill price."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    quantity: Finite
    price: Qty
    client_order_id: str


class KillSwitchExecuted(Message):
    """Execution carried out a flattening :class:`CancelAllOrders` (``command_id``).

    ``open_orders_left`` / ``positions_left`` are what the venue still shows afterwards
    (empty when the account is flat).
    """

    type: Literal["kill_switch_executed"] = "kill_switch_executed"
    command_id: str
    cancelled: list[str] = Field(default_factory=list)
    flattened: list[ClosedPosition] = Field(default_factory=list)
    open_orders_left: list[str] = Field(default_factory=list)
    positions_left: dict[str, float] = Field(default_factory=dict)
