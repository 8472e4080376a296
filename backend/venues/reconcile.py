"""Reconciliation of execution's records with a venue: the comparisons, as pure functions.

On every start, before it reads an order, the execution agent compares what its
database says with what the venue says (``agents/execution_reconcile.py`` does the I/O)
and corrects its records to the venue's, auditing every correction:

* every order the database holds as not final (:data:`OPEN_IN_DB`) against the venue's
  record by client order id (:func:`order_fix`);
* the fills the venue reports for those orders against the stored fills
  (:func:`missing_fills`: "missed fill while down");
* the venue's working orders the database does not know: adopted as ``external``;
* positions: the local ledger against the venue's, then the database against the
  ledger (:func:`position_mismatches`).

Units: quantities signed base units; times ns UTC.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from backend.messages import OrderFilled, OrderStatus, SubmitOrder, stable_id
from backend.venues.broker import VenueOrder
from backend.venues.ledger import same_quantity

__all__ = [
    "OPEN_IN_DB",
    "OrderFix",
    "PositionMismatch",
    "change",
    "missing_fills",
    "order_fix",
    "order_from_row",
    "position_mismatches",
]

#: Database statuses of an order that may still change at the venue.
OPEN_IN_DB: tuple[str, ...] = (
    OrderStatus.NEW.value, OrderStatus.UNKNOWN.value, OrderStatus.ACCEPTED.value,
    OrderStatus.PARTIALLY_FILLED.value,
)


@dataclass(frozen=True)
class OrderFix:
    """A database order status to correct: ``before`` -> ``after`` (``OrderStatus``
    values), with the venue's order id when known and the why."""

    client_order_id: str
    before: str
    after: str
    venue_order_id: str | None
    why: str


@dataclass(frozen=True)
class PositionMismatch:
    """A symbol whose stored position differs from the reference (signed base units)."""

    symbol: str
    stored: float
    reference: float


def _fmt(v: object) -> str:
    return f"{v:.10g}" if isinstance(v, float) else str(v)


def change(before: object, after: object) -> str:
    """The before/after part of an audit reason (``before=2 after=1.5``)."""
    return f"before={_fmt(before)} after={_fmt(after)}"


def order_fix(row: Mapping[str, Any], found: VenueOrder | None) -> OrderFix | None:
    """What to correct in a stored non-final order given the venue's record of it.

    * not at the venue: an order still ``NEW`` is left alone (its ``SubmitOrder`` is
      pending in the stream and will be handled again); any other status goes back to
      ``NEW`` (the intent is all there is: the venue never took the order);
    * at the venue: the stored status becomes the venue's when they differ.
    """
    coid, status = row["client_order_id"], row["status"]
    if found is None:
        if status == OrderStatus.NEW.value:
            return None
        return OrderFix(coid, status, OrderStatus.NEW.value, None,
                        "not at the venue: only the intent exists")
    after = found.status.value
    if after == status:
        return None
    return OrderFix(
        coid, status, after, found.venue_order_id or None,
        f"venue reports {after}, filled {found.filled:.10g} of {found.quantity:.10g}",
    )


def missing_fills(stored_ids: Collection[str], venue_fills: Iterable[OrderFilled]
                  ) -> list[OrderFilled]:
    """The venue's fills whose fill id is not stored, in the venue's order, each once."""
    seen = set(stored_ids)
    out = []
    for f in venue_fills:
        if f.fill_id not in seen:
            seen.add(f.fill_id)
            out.append(f)
    return out


def position_mismatches(stored: Mapping[str, float], reference: Mapping[str, float]
                        ) -> list[PositionMismatch]:
    """Symbols (sorted) whose stored quantity differs from the reference's (a symbol
    missing on one side counts as flat)."""
    out = []
    for sym in sorted(set(stored) | set(reference)):
        a, b = float(stored.get(sym, 0.0)), float(reference.get(sym, 0.0))
        if not same_quantity(a, b):
            out.append(PositionMismatch(sym, a, b))
    return out


def order_from_row(row: Mapping[str, Any], source: str) -> SubmitOrder:
    """The :class:`SubmitOrder` a stored order row was created from (for adopting a
    venue's order into the adapter's ledger after a restart)."""
    coid = row["client_order_id"]
    return SubmitOrder(
        id=stable_id("reconcile-order", coid), ts=int(row["created_ts"]), source=source,
        correlation_id=row["correlation_id"] or "", client_order_id=coid,
        symbol=row["symbol"], side=row["side"], quantity=float(row["quantity"]) or 1e-12,
        reduce_only=bool(row["reduce_only"]), stop_loss=row["stop_loss"],
        take_profit=row["take_profit"], signal_id=(row["signal_id"] or coid)[:64],
        bar_seq=int(row["bar_seq"] or 0),
    )
