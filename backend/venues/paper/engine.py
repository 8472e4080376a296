"""Paper venue matching engine as pure functions (live paper adapter and backtester).

One account in one quote currency.  Every function takes a :class:`PaperBook` (the
models are :mod:`backend.venues.paper.book`'s, re-exported here) and returns a *new* book
plus the events it produced; inputs are never mutated, there is no clock read and no I/O,
so a replay of the same orders and bars produces the same fills, message ids included
(ids come from :func:`backend.messages.stable_id`).

Units: prices quote/base, quantities base units (positions signed), cash, fees and
notional in quote currency, times ns since the Unix epoch (UTC).

Fill model (:func:`on_bar`): a market order rests until the next bar of its symbol and
fills at that bar's open plus slippage; then the position's bracket (stop loss / take
profit) is checked against the same bar's range; then the symbol is marked at the close.
"""

from __future__ import annotations

from backend.messages import (
    NS_PER_DAY,
    BarClosed,
    ExitReason,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    PortfolioMarked,
    PositionChanged,
    PositionSnapshot,
    Side,
    SubmitOrder,
    stable_id,
)
from backend.risk.rules import PortfolioView, PositionView
from backend.venues.config import PaperConfig
from backend.venues.paper.book import MarkedPositions, PaperBook, PaperOrder, PaperPosition

__all__ = [
    "SOURCE",
    "Event",
    "MarkedPositions",
    "PaperBook",
    "PaperOrder",
    "PaperPosition",
    "cancel_all",
    "flatten",
    "known_status",
    "mark_now",
    "on_bar",
    "portfolio_mark",
    "portfolio_view",
    "submit",
]


SOURCE = "venue:paper"
#: Relative tolerance under which a remaining quantity counts as zero.
_REL_EPS = 1e-9

Event = OrderFilled | OrderRejected | PositionChanged


def known_status(book: PaperBook, coid: str) -> str | None:
    """Status of client order id ``coid`` (``OrderStatus`` value) or ``None`` if unseen."""
    return book.known_orders.get(coid)


def portfolio_view(book: PaperBook, bar_seq: int, bar_time: int) -> PortfolioView:
    """The book as risk sees it after bar ``bar_seq`` (``bar_time`` ns, UTC)."""
    day = bar_time // NS_PER_DAY
    return PortfolioView(
        bar_seq=bar_seq,
        bar_time=bar_time,
        cash=book.cash,
        equity=book.equity(),
        positions={
            s: PositionView(quantity=p.quantity, avg_price=p.avg_price, mark=book.mark(s))
            for s, p in book.positions.items()
            if p.quantity != 0
        },
        traded_notional_today=book.traded_notional(day),
        day=day,
        day_start_equity=book.start_equity(day),
    )


def portfolio_mark(book: PaperBook, bar: BarClosed) -> PortfolioMarked:
    """The account after ``bar`` as the :class:`PortfolioMarked` event execution publishes.

    Same figures as :func:`portfolio_view` (flat positions omitted); id derived from the
    bar's seq, ``ts`` = the bar's open time, so a replay gives identical marks.
    """
    return _mark(book, bar.seq, bar.open_time, bar.id)


def mark_now(book: PaperBook) -> PortfolioMarked:
    """The account at the last bar seen (after a kill switch flattened it, say).

    ``bar_seq`` is the highest bar seq the book has seen; ``bar_time`` the latest
    ``bar_time`` recorded for the book's day.  Not for the stream: a mark of the same
    bar seq is already there.
    """
    seq = max(book.last_bar_seq.values(), default=0)
    return _mark(book, seq, book.last_bar_time, stable_id("mark-now", seq))


def _mark(book: PaperBook, seq: int, bar_time: int, corr: str) -> PortfolioMarked:
    view = portfolio_view(book, seq, bar_time)
    return PortfolioMarked(
        id=stable_id("mark", seq), ts=bar_time, source=SOURCE,
        correlation_id=corr, bar_seq=seq, bar_time=bar_time, cash=view.cash,
        equity=view.equity, exposure=view.total_exposure(), day=view.day,
        day_start_equity=view.day_start_equity,
        traded_notional_today=view.traded_notional_today,
        positions={
            s: PositionSnapshot(quantity=p.quantity, avg_price=p.avg_price, mark=p.mark)
            for s, p in view.positions.items()
        },
    )


def _clone(book: PaperBook) -> PaperBook:
    """Copy with fresh containers (their frozen items are shared), safe to modify."""
    return book.model_copy(
        update={
            name: dict(getattr(book, name))
            for name in (
                "positions", "open_orders", "known_orders", "reject_reasons", "marks",
                "last_bar_seq", "traded_notional_by_day", "day_start_equity",
            )
        }
    )


def _rejected(coid: str, symbol: str, reason: str, corr: str, ts: int) -> OrderRejected:
    return OrderRejected(
        id=stable_id("paper", "order_rejected", coid), ts=ts, source=SOURCE,
        correlation_id=corr, client_order_id=coid, symbol=symbol, reason=reason[:500],
    )


def _reject(
    book: PaperBook, coid: str, symbol: str, reason: str, corr: str, ts: int
) -> OrderRejected:
    book.known_orders[coid] = OrderStatus.REJECTED.value
    book.reject_reasons[coid] = reason
    book.open_orders.pop(coid, None)
    return _rejected(coid, symbol, reason, corr, ts)


# ----------------------------------------------------------------- commands
def submit(
    book: PaperBook, order: SubmitOrder, cfg: PaperConfig, now_ns: int
) -> tuple[PaperBook, OrderAccepted | OrderRejected]:
    """Accept (rest until the symbol's next bar) or reject a market order.

    Idempotent by ``client_order_id``: a coid seen before returns the answer for the
    existing order (same message id) and adds nothing.  Rejected: quantity <= 0, or a
    reduce-only order with no opposite position to reduce.  ``cfg`` is unused today
    (kept for a uniform venue signature).
    """
    del cfg
    coid, corr = order.client_order_id, order.correlation_id
    accepted = OrderAccepted(
        id=stable_id("paper", "order_accepted", coid), ts=now_ns, source=SOURCE,
        correlation_id=corr, client_order_id=coid, venue_order_id=f"paper-{coid}",
        symbol=order.symbol, side=order.side, quantity=order.quantity,
    )
    status = book.known_orders.get(coid)
    if status == OrderStatus.REJECTED.value:
        reason = book.reject_reasons.get(coid, "rejected")
        return book, _rejected(coid, order.symbol, reason, corr, now_ns)
    if status is not None:
        return book, accepted

    new = _clone(book)
    pos = new.position_qty(order.symbol)
    if not order.quantity > 0:
        return new, _reject(new, coid, order.symbol, f"quantity {order.quantity} <= 0", corr,
                            now_ns)
    if order.reduce_only and not pos * order.side.sign < 0:
        reason = f"reduce_only {order.side.value} but position is {pos:.8g}: nothing to reduce"
        return new, _reject(new, coid, order.symbol, reason, corr, now_ns)
    new.open_orders[coid] = PaperOrder(
        client_order_id=coid, symbol=order.symbol, side=order.side, quantity=order.quantity,
        reduce_only=order.reduce_only, stop_loss=order.stop_loss,
        take_profit=order.take_profit, signal_id=order.signal_id,
        submitted_seq=new.order_seq, bar_seq=order.bar_seq, correlation_id=corr,
        ref_price=order.ref_price or 0.0,
    )
    new.order_seq += 1
    new.known_orders[coid] = OrderStatus.ACCEPTED.value
    return new, accepted


def cancel_all(
    book: PaperBook, reason: str, now_ns: int, entries_only: bool = False,
) -> tuple[PaperBook, list[OrderCancelled]]:
    """Cancel every open order (in submission order; with ``entries_only`` only those
    that are not reduce-only: a breaker trip keeps the closes); statuses become
    CANCELLED."""
    new = _clone(book)
    events = []
    for o in sorted(book.open_orders.values(), key=lambda o: o.submitted_seq):
        if entries_only and o.reduce_only:
            continue
        new.open_orders.pop(o.client_order_id)
        new.known_orders[o.client_order_id] = OrderStatus.CANCELLED.value
        events.append(OrderCancelled(
            id=stable_id("paper", "order_cancelled", o.client_order_id), ts=now_ns,
            source=SOURCE, correlation_id=o.correlation_id,
            client_order_id=o.client_order_id, symbol=o.symbol, reason=reason[:500],
        ))
    return new, events


# ----------------------------------------------------------------- fills
def _execute(
    book: PaperBook, *, symbol: str, side: Side, qty: float, price: float, fee_rate: float,
    coid: str, corr: str, bar_seq: int, ts: int, exit_reason: ExitReason | None = None,
    stop_loss: float | None = None, take_profit: float | None = None,
) -> list[Event]:
    """Apply one fill to ``book`` (a private clone) and return its two events."""
    old = book.positions.get(symbol) or PaperPosition(symbol=symbol)
    q, s = old.quantity, side.sign
    notional = qty * price
    fee = notional * fee_rate
    closed = 0.0 if q * s >= 0 else min(qty, abs(q))
    realized = (price - old.avg_price) * closed * (1 if q > 0 else -1)
    rest = qty - closed
    if closed == 0.0:  # open or add
        new_q = q + s * qty
        avg = (abs(q) * old.avg_price + notional) / abs(new_q)
        fresh = q == 0
    elif rest > _REL_EPS * qty:  # flip through zero
        new_q, avg, fresh = s * rest, price, True
    else:  # reduce or close
        new_q = q + s * closed
        if abs(new_q) <= _REL_EPS * abs(q):
            new_q = 0.0
        avg, fresh = (old.avg_price if new_q else 0.0), False
    if new_q == 0.0:
        sl = tp = None
        entry_coid, entry_corr = old.entry_coid, old.correlation_id
    elif fresh:
        sl, tp, entry_coid, entry_corr = stop_loss, take_profit, coid, corr
    else:
        sl = stop_loss if stop_loss is not None else old.stop_loss
        tp = take_profit if take_profit is not None else old.take_profit
        entry_coid, entry_corr = old.entry_coid, old.correlation_id
    pos = PaperPosition(
        symbol=symbol, quantity=new_q, avg_price=avg, stop_loss=sl, take_profit=tp,
        realized_pnl=old.realized_pnl + realized, entry_coid=entry_coid,
        correlation_id=entry_corr,
    )
    book.positions[symbol] = pos
    book.cash += -(notional + fee) if side is Side.BUY else notional - fee
    book.fees_paid += fee
    book.realized_pnl += realized
    day = ts // NS_PER_DAY
    book.traded_notional_by_day[day] = book.traded_notional(day) + notional
    book.fill_seq += 1
    book.known_orders[coid] = OrderStatus.FILLED.value
    book.open_orders.pop(coid, None)
    if exit_reason is None:
        exit_reason = ExitReason.ENTRY if closed == 0.0 else ExitReason.SIGNAL
    fill_id = stable_id("paper-fill", coid, book.fill_seq)
    return [
        OrderFilled(
            id=stable_id("paper", "order_filled", fill_id), ts=ts, source=SOURCE,
            correlation_id=corr, fill_id=fill_id, client_order_id=coid, symbol=symbol,
            side=side, quantity=qty, price=price, fee=fee, realized_pnl=realized,
            exit_reason=exit_reason, bar_seq=bar_seq, fill_time=ts, order_done=True,
        ),
        PositionChanged(
            id=stable_id("paper", "position_changed", fill_id), ts=ts, source=SOURCE,
            correlation_id=corr, symbol=symbol, quantity=new_q, avg_price=avg,
            realized_pnl=pos.realized_pnl,
        ),
    ]


def _fill_order(book: PaperBook, o: PaperOrder, bar: BarClosed, cfg: PaperConfig) -> list[Event]:
    """Fill one resting order at ``bar``'s open (+ slippage), or reject it."""
    ts, coid, corr = bar.open_time, o.client_order_id, o.correlation_id
    q = book.position_qty(o.symbol)
    qty = o.quantity
    if o.reduce_only:
        if not q * o.side.sign < 0:
            reason = f"reduce_only {o.side.value}: no position left to reduce"
            return [_reject(book, coid, o.symbol, reason, corr, ts)]
        qty = min(qty, abs(q))
    slip = cfg.slippage_bps / 1e4
    price = bar.open * (1 + slip * o.side.sign)
    capped = False
    if o.side is Side.BUY:
        cost = qty * price * (1 + cfg.fee_rate)
        if cost > book.cash:
            afford = max(book.cash, 0.0) / (price * (1 + cfg.fee_rate))
            if afford <= _REL_EPS * qty:
                reason = f"insufficient cash {book.cash:.8g} for cost {cost:.8g} (incl. fee)"
                return [_reject(book, coid, o.symbol, reason, corr, ts)]
            qty, capped = afford, True
    events = _execute(
        book, symbol=o.symbol, side=o.side, qty=qty, price=price, fee_rate=cfg.fee_rate,
        coid=coid, corr=corr, bar_seq=bar.seq, ts=ts,
        stop_loss=o.stop_loss, take_profit=o.take_profit,
    )
    if capped:
        book.cash = max(book.cash, 0.0)  # float round-off of the cash-limited size
    return events


def _check_bracket(book: PaperBook, bar: BarClosed, cfg: PaperConfig) -> list[Event]:
    """Exit ``bar.symbol``'s position if its stop or take profit lies in the bar's range.

    Stop first when both could have hit (conservative).  A stop fills at
    ``min(open, stop)`` for a long (``max`` for a short) with slippage, so a gap through
    the stop fills at the open; a take profit fills at ``max(open, tp)`` for a long
    (``min`` for a short) without slippage (a resting limit).
    """
    pos = book.positions.get(bar.symbol)
    if pos is None or pos.quantity == 0:
        return []
    slip = cfg.slippage_bps / 1e4
    sl, tp = pos.stop_loss, pos.take_profit
    if pos.quantity > 0:
        if sl is not None and bar.low <= sl:
            price, reason = min(bar.open, sl) * (1 - slip), ExitReason.STOP_LOSS
        elif tp is not None and bar.high >= tp:
            price, reason = max(bar.open, tp), ExitReason.TAKE_PROFIT
        else:
            return []
    else:
        if sl is not None and bar.high >= sl:
            price, reason = max(bar.open, sl) * (1 + slip), ExitReason.STOP_LOSS
        elif tp is not None and bar.low <= tp:
            price, reason = min(bar.open, tp), ExitReason.TAKE_PROFIT
        else:
            return []
    suffix = "sl" if reason is ExitReason.STOP_LOSS else "tp"
    entry = pos.entry_coid or f"paper-{bar.symbol}-{book.fill_seq}"
    side = Side.SELL if pos.quantity > 0 else Side.BUY
    return _execute(
        book, symbol=bar.symbol, side=side, qty=abs(pos.quantity), price=price,
        fee_rate=cfg.fee_rate, coid=f"{entry}-{suffix}", corr=pos.correlation_id,
        bar_seq=bar.seq, ts=bar.open_time, exit_reason=reason,
    )


def on_bar(book: PaperBook, bar: BarClosed, cfg: PaperConfig) -> tuple[PaperBook, list[Event]]:
    """Process one closed bar: day roll, fills at the open, bracket exits, mark.

    Steps (all at ``bar.open_time``):

    1. a UTC day not seen before records ``day_start_equity[day] = equity()`` first;
    2. resting orders of ``bar.symbol`` decided on an earlier bar fill in submission
       order at ``open * (1 +/- slippage_bps / 1e4)`` (buy +, sell -), fee
       ``qty * price * fee_rate``; reduce-only orders are clamped to the position; a
       buy is cut to what cash affords (rejected if that is ~0);
    3. the position's stop loss / take profit is checked against this bar's range
       (a position opened at this open included), see :func:`_check_bracket`;
    4. ``marks[bar.symbol] = bar.close``.

    Each fill yields an ``OrderFilled`` then a ``PositionChanged``.  A bar whose seq is
    not above the last one processed for its symbol (a redelivery) changes nothing.
    """
    if bar.seq <= book.last_bar_seq.get(bar.symbol, -1):
        return book, []
    new = _clone(book)
    day = bar.open_time // NS_PER_DAY
    if day not in new.day_start_equity:
        new.day_start_equity[day] = new.equity()
    new.current_day = max(new.current_day, day)
    events: list[Event] = []
    due = [o for o in book.open_orders.values() if o.symbol == bar.symbol and o.bar_seq < bar.seq]
    for o in sorted(due, key=lambda o: o.submitted_seq):
        events += _fill_order(new, o, bar, cfg)
    events += _check_bracket(new, bar, cfg)
    new.marks[bar.symbol] = bar.close
    new.last_bar_seq[bar.symbol] = bar.seq
    new.last_bar_time = max(new.last_bar_time, bar.open_time)
    return new, events


def flatten(
    book: PaperBook, symbol: str | None, now_ns: int, cfg: PaperConfig | None = None
) -> tuple[PaperBook, list[Event]]:
    """Close ``symbol``'s position (every position if ``None``) at its last mark.

    No slippage; the fee is ``cfg.fee_rate`` (0 without ``cfg``).  Exit reason FLATTEN,
    client order id ``<entry_coid>-flat``.  Open orders are left alone (see
    :func:`cancel_all`).

    The fill is on the paper venue's clock, the market data's: fill time and ts are the
    open time of the latest bar seen (the time of the mark it closes at), ``now_ns`` only
    before any bar.  A kill switch in a replay of 2018 data thus fills in 2018, not at
    today's wall-clock time among the 2018 bar times (which made a report's average
    trade duration read 19,489 hours).
    """
    at = book.last_bar_time or now_ns
    new = _clone(book)
    fee_rate = cfg.fee_rate if cfg is not None else 0.0
    events: list[Event] = []
    for sym in sorted(book.positions):
        pos = book.positions[sym]
        if (symbol is not None and sym != symbol) or pos.quantity == 0:
            continue
        entry = pos.entry_coid or f"paper-{sym}-{new.fill_seq}"
        events += _execute(
            new, symbol=sym, side=Side.SELL if pos.quantity > 0 else Side.BUY,
            qty=abs(pos.quantity), price=book.mark(sym), fee_rate=fee_rate,
            coid=f"{entry}-flat", corr=pos.correlation_id,
            bar_seq=book.last_bar_seq.get(sym, 0), ts=at, exit_reason=ExitReason.FLATTEN,
        )
    return new, events
