"""Paper venue adapter: the pure matching engine of :mod:`backend.paper`, kept in Redis.

The book lives in Redis (``venue:paper:book`` for cash, positions, open orders and
marks; ``venue:paper:orders`` hash for the status of every client order id), so it
survives a restart of the execution agent like a real venue would.  Updates are staged
in the execution agent's transaction (atomic with the XACK of the input that caused
them) and adopted on commit.
"""

from __future__ import annotations

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from backend import channels, paper
from backend.messages import (
    BarClosed,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    PortfolioMarked,
    SubmitOrder,
)
from backend.paper import PaperBook
from backend.settings import PaperConfig
from backend.venues.base import VenueEvent

ORDERS_HASH = "venue:paper:orders"
REJECTS_HASH = "venue:paper:rejects"


class PaperVenue:
    """Simulated venue: market orders fill at the next bar's open with fee and slippage."""

    name = "paper"

    def __init__(self, redis: Redis, cfg: PaperConfig) -> None:
        self.redis = redis
        self.cfg = cfg
        self.book = PaperBook.new(cfg.initial_cash)
        self._next: PaperBook | None = None

    async def load(self) -> None:
        """Load the book from Redis (a new account if none)."""
        raw = await self.redis.get(channels.PAPER_VENUE_KEY)
        if raw is None:
            self.book = PaperBook.new(self.cfg.initial_cash)
            return
        data = orjson.loads(raw)
        statuses = await self.redis.hgetall(ORDERS_HASH)
        rejects = await self.redis.hgetall(REJECTS_HASH)
        data["known_orders"] = {k.decode(): v.decode() for k, v in statuses.items()}
        data["reject_reasons"] = {k.decode(): v.decode() for k, v in rejects.items()}
        self.book = PaperBook.model_validate(data)

    @property
    def _cur(self) -> PaperBook:
        return self._next if self._next is not None else self.book

    async def submit(self, order: SubmitOrder, now_ns: int) -> OrderAccepted | OrderRejected:
        """Accept (rest until the next bar) or reject; idempotent by client order id."""
        self._next, ev = paper.submit(self._cur, order, self.cfg, now_ns)
        return ev

    async def order_status(self, client_order_id: str) -> str | None:
        """Status of ``client_order_id`` at the venue, None if never seen."""
        return paper.known_status(self._cur, client_order_id)

    async def open_orders(self) -> list[str]:
        """Client order ids resting at the venue."""
        return list(self._cur.open_orders)

    async def positions(self) -> dict[str, float]:
        """Signed positions (base units), flat ones omitted."""
        return {s: p.quantity for s, p in self._cur.positions.items() if p.quantity}

    async def cancel_all(self, reason: str, now_ns: int) -> list[OrderCancelled]:
        """Cancel every resting order."""
        self._next, evs = paper.cancel_all(self._cur, reason, now_ns)
        return evs

    async def on_bar(self, bar: BarClosed) -> list[VenueEvent]:
        """Match resting orders and brackets of ``bar.symbol`` against the bar."""
        self._next, evs = paper.on_bar(self._cur, bar, self.cfg)
        return list(evs)

    async def flatten(self, now_ns: int) -> list[VenueEvent]:
        """Close every position at its last mark (kill switch / end of day)."""
        self._next, evs = paper.flatten(self._cur, None, now_ns, self.cfg)
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
        """Stage the pending book (small blob + changed order statuses)."""
        if self._next is None:
            return
        new, old = self._next, self.book
        blob = new.model_dump(mode="json", exclude={"known_orders", "reject_reasons"})
        pipe.set(channels.PAPER_VENUE_KEY, orjson.dumps(blob))
        changed = {k: v for k, v in new.known_orders.items() if old.known_orders.get(k) != v}
        if changed:
            pipe.hset(ORDERS_HASH, mapping=changed)
        rej = {k: v for k, v in new.reject_reasons.items() if k not in old.reject_reasons}
        if rej:
            pipe.hset(REJECTS_HASH, mapping=rej)

    def commit(self) -> None:
        """Adopt the pending book after the transaction executed."""
        if self._next is not None:
            self.book, self._next = self._next, None

    def rollback(self) -> None:
        """Forget the pending book (transaction not executed)."""
        self._next = None
