"""The local ledger of a live venue, as pure functions (no I/O, no clock).

A real venue reports executions (:class:`~backend.venues.broker.VenueFill`); the
ledger turns them into the mesh's events and book-keeping: positions with average
price, realized P&L and fees, cash, our orders' fill progress, stop-loss/take-profit
brackets, marks, and the day-start equity the circuit breaker needs.  It is the live
counterpart of :class:`backend.venues.paper.engine.PaperBook` and uses the same position arithmetic
(average-price method: a fill that reduces a position realizes
``(price - avg_price) * closed * sign(position)``; a flip through zero opens the rest at
the fill price).

Every fill is applied once: fills are keyed by the venue's fill id (``fills``), and the
events of a fill have ids derived from it, so a fill fetched twice (overlapping polls,
a poll redone after a crash) changes nothing the second time.

Accounting (:attr:`Ledger.accounting`):

* ``spot`` (crypto exchanges, cash equity accounts): a buy pays ``qty * price + fee``
  out of cash, a sell receives ``qty * price - fee``; equity = ``cash + sum(qty * mark)``;
* ``margin`` (CFD/FX accounts, MT5): cash is the account balance, which only realized
  P&L and fees move; equity = ``cash + sum(qty * (mark - avg_price))``.

Units: prices quote/base, quantities base units (positions signed), cash, fees, P&L and
notional in the account (quote) currency, times ns UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.messages import (
    NS_PER_DAY,
    ExitReason,
    OrderFilled,
    OrderStatus,
    PortfolioMarked,
    PositionChanged,
    PositionSnapshot,
    Side,
    stable_id,
)
from backend.venues.broker import VenueFill
from backend.venues.paper.engine import MarkedPositions

#: Relative tolerance under which a quantity difference counts as zero.
REL_EPS = 1e-9

Accounting = Literal["spot", "margin"]


class LedgerOrder(BaseModel):
    """One of our orders at a live venue and how much of it the ledger has seen filled.

    ``status`` is the venue's last reported status (:class:`OrderStatus` value);
    ``filled`` the base units the ledger applied from fills; ``exit_reason`` is set for
    orders the venue adapter placed itself (bracket exits, protective stops, kill-switch
    closes); ``stop_price`` (quote/base) for a resting stop; ``requested`` the quantity
    asked for (``quantity`` is what the venue took, truncated to its step).
    """

    model_config = ConfigDict(frozen=True)

    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    filled: float = 0.0
    status: str = OrderStatus.ACCEPTED.value
    venue_order_id: str = ""
    reduce_only: bool = False
    stop_loss: float | None = None
    take_profit: float | None = None
    correlation_id: str = ""
    bar_seq: int = 0
    exit_reason: ExitReason | None = None
    stop_price: float | None = None
    requested: float = 0.0

    @property
    def complete(self) -> bool:
        """True when the ledger has seen the whole ordered quantity filled."""
        return self.filled >= self.quantity * (1 - REL_EPS)

    @property
    def working(self) -> bool:
        """True while more fills or a final status may still come from the venue."""
        if self.status in (OrderStatus.CANCELLED.value, OrderStatus.REJECTED.value):
            return False
        return not self.complete


class LedgerPosition(BaseModel):
    """Net position of one symbol (quantity 0 once flat).

    ``entry_coid``/``correlation_id`` belong to the order that opened it (they name its
    bracket exits); ``exit_coid`` is the bracket exit sent and not yet filled (no second
    exit is sent meanwhile); ``exit_attempt`` numbers the exits tried so far (an exit
    that ended without closing the position -- expired, cancelled, rejected -- is
    followed by the next attempt, with a new client order id); ``protect_coid`` is the
    protective stop resting at the venue for this position (``""``: none) and
    ``protect_attempt`` numbers the protective stops placed (each replacement gets a new
    client order id); ``protect_refused`` is the quantity for which the venue refused one
    (not asked again until the position changes).
    """

    model_config = ConfigDict(frozen=True)

    symbol: str
    quantity: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    stop_loss: float | None = None
    take_profit: float | None = None
    entry_coid: str = ""
    correlation_id: str = ""
    exit_coid: str = ""
    exit_attempt: int = 0
    protect_coid: str = ""
    protect_attempt: int = 0
    protect_refused: float = 0.0


class Ledger(MarkedPositions, BaseModel):
    """The whole local account of one live venue (persisted as JSON in Redis).

    ``orders`` maps our client order ids to :class:`LedgerOrder`; ``fills`` maps every
    venue fill id applied to its time (ns) -- the dedupe set; ``fill_cursor_ns`` is the
    latest fill time applied (polls fetch from a little before it);
    ``day_start_equity`` / ``traded_notional_by_day`` are keyed by UTC day index;
    ``baseline`` is the venue's position per symbol when the ledger was created (holdings
    that existed before the mesh traded: the venue is expected to hold ``baseline +
    position``, and the kill switch closes only ``position``).
    """

    accounting: Accounting = "spot"
    cash: float = 0.0
    balances: dict[str, float] = Field(default_factory=dict)
    positions: dict[str, LedgerPosition] = Field(default_factory=dict)
    orders: dict[str, LedgerOrder] = Field(default_factory=dict)
    fills: dict[str, int] = Field(default_factory=dict)
    marks: dict[str, float] = Field(default_factory=dict)
    last_bar_seq: dict[str, int] = Field(default_factory=dict)
    last_bar_time: int = 0
    fill_cursor_ns: int = 0
    fees_paid: float = 0.0
    realized_pnl: float = 0.0
    traded_notional_by_day: dict[int, float] = Field(default_factory=dict)
    day_start_equity: dict[int, float] = Field(default_factory=dict)
    baseline: dict[str, float] = Field(default_factory=dict)

    def equity(self) -> float:
        """Mark-to-market equity (see the module docstring for the two accountings)."""
        if self.accounting == "margin":
            return self.cash + sum(
                p.quantity * (self.mark(s) - p.avg_price) for s, p in self.positions.items())
        return self.cash + sum(p.quantity * self.mark(s) for s, p in self.positions.items())

    def clone(self) -> Ledger:
        """A copy with fresh containers (their frozen items shared), safe to modify."""
        return self.model_copy(update={
            name: dict(getattr(self, name)) for name in (
                "balances", "positions", "orders", "fills", "marks", "last_bar_seq",
                "traded_notional_by_day", "day_start_equity", "baseline",
            )
        })


def same_quantity(a: float, b: float, rel: float = REL_EPS) -> bool:
    """True when two signed quantities agree within ``rel`` (relative)."""
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-12


def drop_pending_exit(led: Ledger, coid: str) -> None:
    """Order ``coid`` ended (cancelled, expired, rejected): if it was a position's
    pending exit, the position may send the next exit attempt; if it was its protective
    stop, the position is unprotected until the next one rests."""
    for sym, p in led.positions.items():
        if p.exit_coid == coid:
            led.positions[sym] = p.model_copy(
                update={"exit_coid": "", "exit_attempt": p.exit_attempt + 1})
        elif p.protect_coid == coid:
            led.positions[sym] = p.model_copy(update={"protect_coid": ""})


def fill_key(venue: str, fill_id: str) -> str:
    """Our fill id for the venue's execution ``fill_id`` (unique across venues)."""
    return f"{venue}:{fill_id}"


def apply_fill(
    led: Ledger, fill: VenueFill, venue: str,
) -> tuple[list[OrderFilled | PositionChanged], LedgerOrder | None]:
    """Apply one venue execution to ``led`` (a private clone) and return its events.

    Returns ``([], None)`` for a fill already applied (same venue fill id) or with no
    quantity.  Otherwise an :class:`OrderFilled` (``exit_reason`` from the order the
    adapter placed, else ``entry`` for a fill that opens or adds and ``signal`` for one
    that reduces) and the :class:`PositionChanged` after it, plus the updated order (or
    ``None`` for a fill of an order the ledger does not know: external).  A rebate (fee
    < 0) credits cash; the event reports the fee as 0 (fees on the wire are >= 0).

    A fee paid in the base asset (``fill.base_fee``) is netted out of the quantity: a
    buy of 2.0 with 0.002 taken as fee adds 1.998 to the position, and the event reports
    quantity 1.998 with the fee's value in quote currency (``base_fee x price``) added to
    ``fee``; cash moves by what the venue charged in quote.  The order's fill progress
    counts the venue's executed quantity (2.0).
    """
    key = fill_key(venue, fill.fill_id)
    if key in led.fills or not fill.quantity > 0:
        return [], None
    led.fills[key] = fill.time_ns
    led.fill_cursor_ns = max(led.fill_cursor_ns, fill.time_ns)
    order = led.orders.get(fill.client_order_id)
    sym, price, s = fill.symbol, fill.price, fill.side.sign
    base_fee = max(fill.base_fee, 0.0)
    qty = fill.quantity - base_fee if s > 0 else fill.quantity + base_fee
    fee = fill.fee + base_fee * price
    if not qty > 0:  # a fee as large as the trade: nothing reaches the position
        qty, fee = fill.quantity, fill.fee
    old = led.positions.get(sym) or LedgerPosition(symbol=sym)
    q = old.quantity
    notional = qty * price
    closed = 0.0 if q * s >= 0 else min(qty, abs(q))
    realized = (price - old.avg_price) * closed * (1 if q > 0 else -1)
    rest = qty - closed
    if closed == 0.0:  # open or add
        new_q = q + s * qty
        avg, fresh = (abs(q) * old.avg_price + notional) / abs(new_q), q == 0
    elif rest > REL_EPS * qty:  # flip through zero
        new_q, avg, fresh = s * rest, price, True
    else:  # reduce or close
        new_q = q + s * closed
        if abs(new_q) <= REL_EPS * abs(q):
            new_q = 0.0
        avg, fresh = (old.avg_price if new_q else 0.0), False
    sl = order.stop_loss if order is not None else None
    tp = order.take_profit if order is not None else None
    # An order not in the ledger (external, or its record was lost): a fill that closes
    # is attributed to the position's opening signal.
    corr = order.correlation_id if order is not None else old.correlation_id if closed else ""
    if new_q == 0.0:
        pos = LedgerPosition(symbol=sym, realized_pnl=old.realized_pnl + realized)
    elif fresh:
        pos = LedgerPosition(
            symbol=sym, quantity=new_q, avg_price=avg, realized_pnl=old.realized_pnl + realized,
            stop_loss=sl, take_profit=tp, entry_coid=fill.client_order_id, correlation_id=corr)
    else:
        pos = old.model_copy(update={
            "quantity": new_q, "avg_price": avg, "realized_pnl": old.realized_pnl + realized,
            "stop_loss": sl if sl is not None else old.stop_loss,
            "take_profit": tp if tp is not None else old.take_profit,
        })
    led.positions[sym] = pos
    if led.accounting == "margin":
        led.cash += realized - fee
    else:
        led.cash += -(notional + fee) if fill.side is Side.BUY else notional - fee
    led.fees_paid += fee
    led.realized_pnl += realized
    day = fill.time_ns // NS_PER_DAY
    led.traded_notional_by_day[day] = (led.traded_notional_by_day.get(day, 0.0)
                                       + fill.quantity * price)
    if order is not None:
        order = order.model_copy(update={"filled": order.filled + fill.quantity})
        led.orders[order.client_order_id] = order
        if pos.exit_coid == order.client_order_id and order.complete:
            # done: a position that grows again from what is left (dust) exits anew
            led.positions[sym] = pos.model_copy(
                update={"exit_coid": "", "exit_attempt": pos.exit_attempt + 1})
    reason = order.exit_reason if order is not None and order.exit_reason else None
    if reason is None:  # the adapter's own orders are known by their prefix
        reason = _EXIT_PREFIXES.get(fill.client_order_id[:5])
    if reason is None:
        reason = ExitReason.ENTRY if closed == 0.0 else ExitReason.SIGNAL
    source = f"venue:{venue}"
    bar_seq = led.last_bar_seq.get(sym, 0)
    events: list[OrderFilled | PositionChanged] = [
        OrderFilled(
            id=stable_id("live", venue, "order_filled", fill.fill_id), ts=fill.time_ns,
            source=source, correlation_id=corr, fill_id=key,
            client_order_id=fill.client_order_id, symbol=sym, side=fill.side, quantity=qty,
            price=price, fee=max(fee, 0.0), realized_pnl=realized, exit_reason=reason,
            bar_seq=bar_seq, fill_time=fill.time_ns,
            order_done=order is not None and order.complete,
        ),
        PositionChanged(
            id=stable_id("live", venue, "position_changed", fill.fill_id), ts=fill.time_ns,
            source=source, correlation_id=corr, symbol=sym, quantity=new_q, avg_price=avg,
            realized_pnl=led.positions[sym].realized_pnl,
        ),
    ]
    return events, order


def set_position(led: Ledger, symbol: str, quantity: float, venue: str, now_ns: int
                 ) -> PositionChanged:
    """Force ``symbol``'s position to the venue's ``quantity`` (reconciliation).

    The average price is kept while the side is unchanged, else the last mark (the
    venue does not say what the position cost); brackets are dropped when the side
    changes or the position goes flat.  Returns the :class:`PositionChanged`.
    """
    old = led.positions.get(symbol) or LedgerPosition(symbol=symbol)
    if quantity == 0.0:
        pos = LedgerPosition(symbol=symbol, realized_pnl=old.realized_pnl)
    elif old.quantity * quantity > 0:
        pos = old.model_copy(update={"quantity": quantity})
    else:
        pos = LedgerPosition(symbol=symbol, quantity=quantity, avg_price=led.mark(symbol),
                             realized_pnl=old.realized_pnl)
    led.positions[symbol] = pos
    return PositionChanged(
        id=stable_id("live", venue, "position_set", symbol, old.quantity, quantity, now_ns),
        ts=now_ns, source=f"venue:{venue}", symbol=symbol, quantity=quantity,
        avg_price=pos.avg_price, realized_pnl=pos.realized_pnl,
    )


def roll_day(led: Ledger, open_time_ns: int) -> None:
    """Record the day-start equity the first time a bar of a new UTC day is seen."""
    day = open_time_ns // NS_PER_DAY
    if day not in led.day_start_equity:
        led.day_start_equity[day] = led.equity()


def bracket_hit(pos: LedgerPosition, high: float, low: float) -> ExitReason | None:
    """Which bracket exit a bar's range triggers (stop first when both could have hit).

    A long exits on ``low <= stop_loss`` or ``high >= take_profit``; a short on
    ``high >= stop_loss`` or ``low <= take_profit``.  ``None`` while an exit is pending.
    """
    if pos.quantity == 0 or pos.exit_coid:
        return None
    sl, tp = pos.stop_loss, pos.take_profit
    if pos.quantity > 0:
        if sl is not None and low <= sl:
            return ExitReason.STOP_LOSS
        if tp is not None and high >= tp:
            return ExitReason.TAKE_PROFIT
    else:
        if sl is not None and high >= sl:
            return ExitReason.STOP_LOSS
        if tp is not None and low <= tp:
            return ExitReason.TAKE_PROFIT
    return None


#: Client order id prefixes of the orders the adapter places itself.
_EXIT_PREFIXES = {"tm-s-": ExitReason.STOP_LOSS, "tm-t-": ExitReason.TAKE_PROFIT,
                  "tm-p-": ExitReason.STOP_LOSS, "tm-k-": ExitReason.FLATTEN}


def exit_coid(venue: str, entry: str, reason: ExitReason, attempt: int = 0) -> str:
    """Deterministic client order id of a bracket exit of the position opened by
    ``entry`` (``tm-s-...`` stop loss, ``tm-t-...`` take profit; 29 chars).

    ``attempt`` numbers the exits of one position: when an exit ends without closing
    the position (a market order that expired partly filled, a cancellation, a
    rejection) the next one gets the next number, so it is never mistaken for the
    finished one.
    """
    leg = "s" if reason is ExitReason.STOP_LOSS else "t"
    parts: tuple[object, ...] = ("exit", venue, entry, reason.value)
    if attempt:
        parts += (attempt,)
    return f"tm-{leg}-{stable_id(*parts)[:24]}"


def protect_coid(venue: str, entry: str, attempt: int) -> str:
    """Deterministic client order id of the ``attempt``-th protective stop resting at
    the venue for the position opened by ``entry`` (``tm-p-...``, 29 chars)."""
    return f"tm-p-{stable_id('protect', venue, entry, attempt)[:24]}"


def is_protective(client_order_id: str) -> bool:
    """True for the client order id of a protective stop (:func:`protect_coid`)."""
    return client_order_id.startswith("tm-p-")


def flatten_coid(command_id: str, symbol: str, attempt: int = 0) -> str:
    """Deterministic client order id of the kill switch's ``attempt``-th close of
    ``symbol`` for command ``command_id``."""
    parts: tuple[object, ...] = ("flatten", command_id, symbol)
    if attempt:
        parts += (attempt,)
    return f"tm-k-{stable_id(*parts)[:24]}"


def portfolio_mark(led: Ledger, bar_seq: int, bar_time: int, venue: str,
                   dust: Callable[[str], float] | None = None) -> PortfolioMarked:
    """The account as a :class:`PortfolioMarked` (flat positions omitted).

    ``day``/``day_start_equity``/``traded_notional_today`` refer to the UTC day of
    ``bar_time``; the id is derived from the venue and ``bar_seq``.  ``dust(symbol)``:
    the venue's quantity step; a position below it (coins left by a fee taken in the base
    asset, which cannot be sold) is not listed as a position -- risk would otherwise see
    the symbol as held for good -- while its value stays in the equity.
    """
    day = bar_time // NS_PER_DAY
    equity = led.equity()
    return PortfolioMarked(
        id=stable_id("live-mark", venue, bar_seq), ts=bar_time, source=f"venue:{venue}",
        correlation_id=stable_id("live-mark", venue, bar_seq), bar_seq=bar_seq,
        bar_time=bar_time, cash=led.cash, equity=equity, exposure=led.exposure(), day=day,
        day_start_equity=led.day_start_equity.get(day, equity),
        traded_notional_today=led.traded_notional_by_day.get(day, 0.0),
        positions={
            s: PositionSnapshot(quantity=p.quantity, avg_price=p.avg_price, mark=led.mark(s))
            for s, p in sorted(led.positions.items())
            if p.quantity != 0 and abs(p.quantity) >= (dust(s) if dust is not None else 0.0)
        },
    )
