"""Paper venue adapter: the matching engine of :mod:`backend.venues.paper.engine`, in Redis.

The book lives in Redis (``venue:paper:book`` for cash, positions, open orders and
marks; ``venue:paper:orders`` hash for the status of every client order id;
``venue:paper:order_log`` for each order's symbol, side and quantity;
``venue:paper:fills`` for every execution, the venue's trade history), so it survives a
restart of the execution agent like a real venue would.  Updates are staged in the
execution agent's transaction (atomic with the XACK of the input that caused them) and
adopted on commit.

The matching itself is :mod:`backend.venues.paper.engine` (shared with the backtester), untouched
here: the adapter only answers the venue questions of :class:`backend.venues.base.Venue`
(order by client order id, working orders, trade history) from the book.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from backend import channels
from backend.bus import as_text
from backend.messages import (
    BarClosed,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    PortfolioMarked,
    Side,
    SubmitOrder,
)
from backend.venues.base import BookPosition, PositionFix, VenueAlarm, VenueEvent
from backend.venues.broker import VenueOrder
from backend.venues.config import PaperConfig
from backend.venues.paper import engine as paper
from backend.venues.paper.engine import PaperBook

ORDERS_HASH = channels.PAPER_ORDERS_HASH
REJECTS_HASH = channels.PAPER_REJECTS_HASH
#: client order id -> ``{"symbol", "side", "quantity"}`` of every order submitted.
ORDER_LOG_HASH = channels.PAPER_ORDER_LOG_HASH
#: fill id -> ``OrderFilled`` JSON of every execution (the venue's trade history).
FILLS_HASH = channels.PAPER_FILLS_HASH


class PaperVenue:
    """Simulated venue: market orders fill at the next bar's open with fee and slippage."""

    name = "paper"
    polls = False

    def __init__(self, redis: Redis, cfg: PaperConfig) -> None:
        self.redis = redis
        self.cfg = cfg
        self.book = PaperBook.new(cfg.initial_cash)
        self._next: PaperBook | None = None
        self._new_fills: dict[str, OrderFilled] = {}
        self._new_log: dict[str, bytes] = {}

    @property
    def baseline(self) -> dict[str, float]:
        """A paper account starts empty: nothing was held before the mesh traded."""
        return {}

    def known_orders(self) -> set[str]:
        """Client order ids the book has an answer for."""
        return set(self._cur.known_orders)

    async def load(self, baseline: dict[str, float] | None = None) -> None:
        """Load the book from Redis (a new account if none); ``baseline`` is ignored."""
        del baseline
        raw = await self.redis.get(channels.PAPER_VENUE_KEY)
        if raw is None:
            self.book = PaperBook.new(self.cfg.initial_cash)
            return
        data = orjson.loads(raw)
        statuses = await self.redis.hgetall(ORDERS_HASH)
        rejects = await self.redis.hgetall(REJECTS_HASH)
        data["known_orders"] = {as_text(k): as_text(v) for k, v in statuses.items()}
        data["reject_reasons"] = {as_text(k): as_text(v) for k, v in rejects.items()}
        self.book = PaperBook.model_validate(data)

    async def close(self) -> None:
        """Nothing to release (the book lives in the agent's Redis)."""

    @property
    def _cur(self) -> PaperBook:
        return self._next if self._next is not None else self.book

    async def submit(self, order: SubmitOrder, now_ns: int) -> OrderAccepted | OrderRejected:
        """Accept (rest until the next bar) or reject; idempotent by client order id."""
        known = paper.known_status(self._cur, order.client_order_id) is not None
        self._next, ev = paper.submit(self._cur, order, self.cfg, now_ns)
        if not known:
            self._new_log[order.client_order_id] = orjson.dumps({
                "symbol": order.symbol, "side": order.side.value, "quantity": order.quantity,
            })
        return ev

    async def place(self, order: SubmitOrder, now_ns: int, *, send: bool = True
                    ) -> list[VenueEvent]:
        """An order the book has gets its first answer again (nothing changes); a new
        one is submitted when ``send`` (else ``[]``).  The book is in-process: an
        outcome is never unknown."""
        if await self.fetch_order(order.client_order_id, order.symbol) is not None:
            return [self.adopt(order, None, now_ns)]
        if not send:
            return []
        return [await self.submit(order, now_ns)]

    def adopt(self, order: SubmitOrder, found: VenueOrder | None, now_ns: int) -> VenueEvent:
        """The book's answer for an order it already has (same message id as the first
        answer); nothing changes."""
        del found
        _, ev = paper.submit(self._cur, order, self.cfg, now_ns)
        return ev

    async def lookup(self, order: SubmitOrder, sent_ns: int | None) -> VenueOrder | None:
        """The book's record of ``order`` (the book is in-process: never unknown)."""
        del sent_ns
        return await self.fetch_order(order.client_order_id, order.symbol)

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The book's record of ``client_order_id`` (``None`` if never submitted)."""
        cur = self._cur
        status = paper.known_status(cur, client_order_id)
        if status is None:
            return None
        fills = [f for f in await self._all_fills() if f.client_order_id == client_order_id]
        filled = sum(f.quantity for f in fills)
        avg = sum(f.quantity * f.price for f in fills) / filled if filled else None
        side, qty = Side.BUY, filled
        resting = cur.open_orders.get(client_order_id)
        raw = await self.redis.hget(ORDER_LOG_HASH, client_order_id)
        if client_order_id in self._new_log:
            raw = self._new_log[client_order_id]
        if resting is not None:
            symbol, side, qty = resting.symbol, resting.side, resting.quantity
        elif raw is not None:
            log = orjson.loads(raw)
            symbol, side, qty = log["symbol"], Side(log["side"]), float(log["quantity"])
        elif fills:
            symbol, side = fills[0].symbol, fills[0].side
        return VenueOrder(
            client_order_id=client_order_id, venue_order_id=f"paper-{client_order_id}",
            symbol=symbol, side=side, quantity=max(qty, filled), filled=filled,
            avg_price=avg, status=OrderStatus(status),
            reason=cur.reject_reasons.get(client_order_id, ""),
        )

    def venue_order_id(self, client_order_id: str) -> str | None:
        """The paper venue's id of an order it knows (``paper-<client order id>``)."""
        if paper.known_status(self._cur, client_order_id) is None:
            return None
        return f"paper-{client_order_id}"

    def fill_status(self, client_order_id: str) -> OrderStatus:
        """Paper orders fill completely in one execution: always ``FILLED``."""
        del client_order_id
        return OrderStatus.FILLED

    async def open_orders(self) -> list[str]:
        """Client order ids resting at the venue."""
        return list(self._cur.open_orders)

    async def open_venue_orders(self) -> list[VenueOrder]:
        """The resting orders in full (nothing filled yet: paper orders fill at once)."""
        return [
            VenueOrder(
                client_order_id=o.client_order_id, venue_order_id=f"paper-{o.client_order_id}",
                symbol=o.symbol, side=o.side, quantity=o.quantity, filled=0.0, avg_price=None,
                status=OrderStatus.ACCEPTED,
            )
            for o in sorted(self._cur.open_orders.values(), key=lambda o: o.submitted_seq)
        ]

    async def positions(self) -> dict[str, float]:
        """Signed positions (base units), flat ones omitted."""
        return {s: p.quantity for s, p in self._cur.positions.items() if p.quantity}

    def book_positions(self) -> dict[str, BookPosition]:
        """The book's positions (flat ones omitted): it *is* the venue."""
        return {
            s: BookPosition(p.quantity, p.avg_price, p.realized_pnl)
            for s, p in self._cur.positions.items() if p.quantity
        }

    async def fills_of(self, client_order_ids: Collection[str]) -> list[OrderFilled]:
        """The book's executions of these orders, oldest first."""
        want = set(client_order_ids)
        return [f for f in await self._all_fills() if f.client_order_id in want]

    async def _all_fills(self) -> list[OrderFilled]:
        raw = await self.redis.hvals(FILLS_HASH)
        fills = {f.fill_id: f for f in (OrderFilled.model_validate_json(r) for r in raw)}
        fills.update(self._new_fills)
        return sorted(fills.values(), key=lambda f: (f.fill_time, f.bar_seq, f.ts, f.fill_id))

    async def poll(self, now_ns: int, since_ns: int | None = None) -> list[VenueEvent]:
        """Nothing to poll: paper fills happen on bars (:meth:`on_bar`)."""
        del now_ns, since_ns
        return []

    async def check_positions(self, now_ns: int) -> tuple[list[VenueEvent], list[VenueAlarm]]:
        """Nothing to compare: the book is the venue."""
        del now_ns
        return [], []

    async def adopt_position(self, symbol: str, now_ns: int) -> PositionFix | None:
        """Nothing to adopt: the book is the venue."""
        del symbol, now_ns
        return None

    def take_alarms(self) -> list[VenueAlarm]:
        """The paper venue raises none."""
        return []

    def _log_fills(self, events: Iterable[object]) -> None:
        for ev in events:
            if isinstance(ev, OrderFilled):
                self._new_fills[ev.fill_id] = ev

    async def cancel_all(self, reason: str, now_ns: int, *, keep_protective: bool = False,
                         entries_only: bool = False) -> list[OrderCancelled]:
        """Cancel every resting order, or only those that are not reduce-only (its
        brackets are part of the book, not orders: ``keep_protective`` changes nothing)."""
        del keep_protective
        self._next, evs = paper.cancel_all(self._cur, reason, now_ns, entries_only)
        return evs

    async def on_bar(self, bar: BarClosed) -> list[VenueEvent]:
        """Match resting orders and brackets of ``bar.symbol`` against the bar."""
        self._next, evs = paper.on_bar(self._cur, bar, self.cfg)
        self._log_fills(evs)
        return list(evs)

    async def flatten(self, now_ns: int, command_id: str = "") -> list[VenueEvent]:
        """Close every position at its last mark (kill switch / end of day).

        Client order ids ``<entry coid>-flat`` (``command_id`` is not needed: a flat
        book has nothing left to close on redelivery).
        """
        del command_id
        self._next, evs = paper.flatten(self._cur, None, now_ns, self.cfg)
        self._log_fills(evs)
        return list(evs)

    def portfolio(self, bar: BarClosed) -> PortfolioMarked:
        """Account state after ``bar`` as a :class:`PortfolioMarked` event."""
        return paper.portfolio_mark(self._cur, bar)

    def current_mark(self) -> PortfolioMarked | None:
        """Account state now, at the marks of the last bar seen (None before any bar)."""
        cur = self._cur
        if not cur.last_bar_seq:
            return None
        return paper.mark_now(cur)

    def stage(self, pipe: Pipeline) -> None:
        """Stage the pending book (small blob + changed order statuses + new fills)."""
        log_entries: dict[Any, Any] = dict(self._new_log)
        if log_entries:
            pipe.hset(ORDER_LOG_HASH, mapping=log_entries)
        fills: dict[Any, Any] = {k: v.to_json() for k, v in self._new_fills.items()}
        if fills:
            pipe.hset(FILLS_HASH, mapping=fills)
        if self._next is None:
            return
        new, old = self._next, self.book
        blob = new.model_dump(mode="json", exclude={"known_orders", "reject_reasons"})
        pipe.set(channels.PAPER_VENUE_KEY, orjson.dumps(blob))
        changed: dict[Any, Any] = {k: v for k, v in new.known_orders.items()
                                   if old.known_orders.get(k) != v}
        if changed:
            pipe.hset(ORDERS_HASH, mapping=changed)
        rej: dict[Any, Any] = {k: v for k, v in new.reject_reasons.items()
                               if k not in old.reject_reasons}
        if rej:
            pipe.hset(REJECTS_HASH, mapping=rej)

    def commit(self) -> None:
        """Adopt the pending book after the transaction executed."""
        if self._next is not None:
            self.book, self._next = self._next, None
        self._new_fills, self._new_log = {}, {}

    def rollback(self) -> None:
        """Forget the pending book (transaction not executed)."""
        self._next = None
        self._new_fills, self._new_log = {}, {}
