"""Orders risk approved that the portfolio does not show yet: counted against every limit.

A portfolio mark shows positions and cash after the fills it has seen; an order risk
approved a moment ago is not in it yet.  Sizing the next signal from the mark alone lets
queued approvals stack up (four approvals for one symbol, four full-size orders).  So risk
keeps each approved order *in flight* (:class:`InFlight`, part of its durable state) until
the first mark after the order is final, and :func:`with_in_flight` adds them to the
portfolio view its rules see: the position as if they had filled at the price they were
sized at, the cash they will cost.

Pure functions (the risk agent and :mod:`backend.mesh.simulate` share them; the simulator's
in-flight orders are the paper book's resting orders).  Units: quantities base units,
prices quote/base, cash quote currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from backend.messages import OrderCancelled, OrderFilled, OrderRejected, Side
from backend.risk.rules import PortfolioView, PositionView

__all__ = ["InFlight", "after_event", "after_mark", "with_in_flight"]


class InFlight(BaseModel):
    """One approved order: ``quantity`` at ``price`` (the signal's entry price);
    ``filled`` so far (fill ids in ``fills``), ``marked`` the part a mark already shows,
    ``final`` once filled, cancelled or rejected."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    side: Side
    quantity: float = Field(ge=0)
    price: float = Field(ge=0)
    reduce_only: bool = False
    filled: float = 0.0
    marked: float = 0.0
    final: bool = False
    fills: tuple[str, ...] = ()

    @property
    def counted(self) -> float:
        """Base units the portfolio does not show yet: all of it while it may still fill,
        what filled once it is final (the next mark shows that)."""
        return max((self.filled if self.final else self.quantity) - self.marked, 0.0)


def with_in_flight(view: PortfolioView, items: Iterable[InFlight], fee_rate: float
                   ) -> PortfolioView:
    """``view`` as if the orders in flight had filled at their price: positions grown by
    them (marked at the symbol's mark, else their price), cash less what buys will cost
    (with the fee).  Reduce-only orders are left out (a close only lowers the limits'
    figures, and counting it early would let an entry through)."""
    positions = dict(view.positions)
    cash = view.cash
    for it in items:
        qty = it.counted
        if qty <= 0 or it.reduce_only:
            continue
        cur = positions.get(it.symbol)
        positions[it.symbol] = PositionView(
            quantity=(cur.quantity if cur else 0.0) + it.side.sign * qty,
            avg_price=cur.avg_price if cur else it.price,
            mark=cur.mark if cur else it.price)
        if it.side is Side.BUY:
            cash -= qty * it.price * (1 + fee_rate)
    return view.model_copy(update={"positions": positions, "cash": cash})


def after_event(items: Mapping[str, InFlight], ev: object) -> dict[str, InFlight]:
    """The orders in flight after a venue event (a fill counted once per fill id)."""
    out = dict(items)
    coid = getattr(ev, "client_order_id", None)
    it = out.get(coid) if coid else None
    if it is None:
        return out
    if isinstance(ev, OrderFilled) and ev.fill_id not in it.fills:
        filled = it.filled + ev.quantity
        out[ev.client_order_id] = it.model_copy(update={
            "filled": filled, "fills": (*it.fills, ev.fill_id),
            "final": it.final or ev.order_done or filled >= it.quantity * (1 - 1e-9)})
    elif isinstance(ev, OrderRejected | OrderCancelled):
        out[ev.client_order_id] = it.model_copy(update={"final": True})
    return out


def after_mark(items: Mapping[str, InFlight]) -> dict[str, InFlight]:
    """The orders in flight after a portfolio mark: what filled is in the mark now, the
    final ones are done."""
    return {k: it.model_copy(update={"marked": it.filled})
            for k, it in items.items() if not it.final}
