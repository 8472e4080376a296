"""Sending an order to a live venue at most once, and resolving an unknown outcome.

Every order the mesh sends to a live venue -- the risk agent's orders, bracket exits,
protective stops, the kill switch's closes -- goes through :class:`Placer`, which keeps
DESIGN.md's rule: *a timeout means "unknown", resolved by asking the venue (order and
trade history) for longer than a request can live, never by a guess*.

1. Before the venue is called, the send is written to a durable :class:`SendJournal`
   (the execution agent's database: ``orders.sent_ts``), so whoever handles the order
   next -- the same process after a timeout, a restarted one after a crash -- knows it
   may be at the venue and since when.
2. An order whose journal says it was sent, or whose send failed with
   :class:`~backend.venues.broker.VenueUnavailable` (timeout, dropped connection, 5xx),
   is **resolved** (:meth:`Placer.resolve`): it is looked up by client order id, and in
   the trade history, again and again, until the venue's request lifetime has passed
   since the send (:attr:`~backend.venues.broker.BrokerClient.request_lifetime_s` plus
   ``margin_s``; a request still in flight can land until then).  Found -> adopted;
   never sent again.
3. Absent after that, the outcome is certain only when the venue bounds a request's
   lifetime (Binance's ``recvWindow``): then the order definitely did not land and is
   sent again with the same client order id.  A venue that refuses any reused client
   order id (:attr:`~backend.venues.broker.BrokerClient.unique_client_order_ids`) may
   get the resend at once.  Any other venue (MT5, IB) leaves the order **unresolved**:
   :class:`~backend.venues.broker.OrderUnresolved` is raised, nothing is resent, and the
   caller keeps the order ``UNKNOWN``, halts its symbol and tells a person.
4. While the venue cannot be asked at all, :class:`VenueUnavailable` propagates: the
   caller keeps its input and tries again later (the journal keeps the send time, so
   the window is not restarted).

Times: ns since the epoch (UTC) for journal entries, seconds for the timings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from backend.messages import ExitReason, OrderStatus, Side
from backend.venues.broker import BrokerClient, OrderUnresolved, VenueOrder, VenueUnavailable

__all__ = ["MemoryJournal", "OrderIntent", "Placer", "PlacerTiming", "SendJournal"]

T = TypeVar("T")
NS = 1_000_000_000


@dataclass(frozen=True)
class OrderIntent:
    """One order about to be sent (market, or a resting stop-market when
    ``stop_price`` is set).

    ``quantity`` base units; ``stop_price`` quote/base; ``exit_reason`` set for the
    orders the venue adapter places itself (exits, protective stops, kill-switch
    closes), which the journal records as reduce-only orders of their own.
    """

    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    reduce_only: bool = False
    correlation_id: str = ""
    bar_seq: int = 0
    stop_price: float | None = None
    exit_reason: ExitReason | None = None


class SendJournal(Protocol):
    """Where sends are recorded durably before the venue is called."""

    async def sending(self, intent: OrderIntent) -> int:
        """Record that ``intent`` is about to be sent (its row first, if the order has
        none yet); returns the send time (ns), which must be durable on return."""

    async def last_sent(self, client_order_id: str) -> int | None:
        """The time (ns) of the latest send of ``client_order_id``; ``None`` if it was
        never sent."""

    async def unknown(self, client_order_id: str, why: str) -> None:
        """Record that the latest send's outcome is unknown (status ``UNKNOWN``)."""


@dataclass
class MemoryJournal:
    """A :class:`SendJournal` in memory (unit tests, tools without a database)."""

    sent: dict[str, int] = field(default_factory=dict)
    unknowns: dict[str, str] = field(default_factory=dict)
    intents: dict[str, OrderIntent] = field(default_factory=dict)

    async def sending(self, intent: OrderIntent) -> int:
        """See :meth:`SendJournal.sending`."""
        self.intents[intent.client_order_id] = intent
        self.sent[intent.client_order_id] = t = time.time_ns()
        return t

    async def last_sent(self, client_order_id: str) -> int | None:
        """See :meth:`SendJournal.last_sent`."""
        return self.sent.get(client_order_id)

    async def unknown(self, client_order_id: str, why: str) -> None:
        """See :meth:`SendJournal.unknown`."""
        self.unknowns[client_order_id] = why


@dataclass(frozen=True)
class PlacerTiming:
    """How long calls may take and how an unknown outcome is resolved (seconds).

    ``call_timeout_s`` caps every venue call (a backstop for a hung client);
    ``backoff_s``/``backoff_max_s`` the pause between lookups (doubling);
    ``margin_s`` is added to the venue's request lifetime (clock skew, queueing);
    ``window_s`` is how long an order is looked for at a venue that bounds nothing
    before it is declared unresolved; ``unreachable_attempts`` lookups in a row that
    cannot reach the venue make :meth:`Placer.resolve` give up for now
    (``VenueUnavailable``).
    """

    call_timeout_s: float = 10.0
    backoff_s: float = 0.5
    backoff_max_s: float = 4.0
    margin_s: float = 5.0
    window_s: float = 30.0
    unreachable_attempts: int = 5


async def _no_stop(seconds: float) -> bool:
    await asyncio.sleep(seconds)
    return False


class Placer:
    """Sends orders through a :class:`BrokerClient` with the UNKNOWN protocol (see the
    module docstring).

    Parameters
    ----------
    client
        The venue's client.
    journal
        Durable record of sends.
    timing
        Timeouts and resolution windows.
    pause
        ``await pause(s)`` waits ``s`` seconds and returns True when the caller is
        stopping (the resolution is then abandoned with ``VenueUnavailable``; the
        journal keeps the send time for the next try).
    fence
        ``await fence()`` before every venue call: raises when this process may no
        longer call the venue (:class:`backend.mesh.lease.LeaseLost`).
    """

    def __init__(self, client: BrokerClient, journal: SendJournal,
                 timing: PlacerTiming | None = None,
                 pause: Callable[[float], Awaitable[bool]] | None = None,
                 fence: Callable[[], Awaitable[None]] | None = None) -> None:
        self.client, self.journal = client, journal
        self.timing = timing or PlacerTiming()
        self.pause = pause or _no_stop
        self.fence = fence

    async def call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """One venue call under :attr:`PlacerTiming.call_timeout_s` (a timeout is
        ``VenueUnavailable``), after the fence check."""
        if self.fence is not None:
            await self.fence()
        try:
            return await asyncio.wait_for(fn(), self.timing.call_timeout_s)
        except TimeoutError:
            raise VenueUnavailable(
                f"{self.client.name} {what}: no answer within "
                f"{self.timing.call_timeout_s:g}s") from None

    @property
    def lifetime_s(self) -> float | None:
        """How long after its send a request can take effect at the venue (``None``:
        unbounded)."""
        return getattr(self.client, "request_lifetime_s", None)

    def deadline_ns(self, sent_ns: int) -> int:
        """Until when an order sent at ``sent_ns`` is looked for before its absence
        counts (ns)."""
        life = self.lifetime_s
        span = (life if life is not None else self.timing.window_s) + self.timing.margin_s
        return sent_ns + int(span * NS)

    # ------------------------------------------------------------------ placing
    async def place(self, intent: OrderIntent) -> VenueOrder:
        """Send ``intent`` unless the venue may already have it; return the venue's
        record of the order.

        Raises
        ------
        VenueRejected
            The venue (or the client's pre-trade check) refused it.
        VenueUnavailable
            The venue cannot be asked now; the caller retries later.
        OrderUnresolved
            The outcome stays unknown (see the module docstring); nothing was resent.
        """
        coid = intent.client_order_id
        sent = await self.journal.last_sent(coid)
        if sent is not None:
            found = await self.resolve(intent, sent)
            if found is not None:
                return found
        for _ in range(2):
            sent = await self.journal.sending(intent)
            try:
                return await self.call(f"send {coid}", lambda: self._send(intent))
            except VenueUnavailable as exc:
                why = f"submit outcome unknown: {exc}"[:500]
                await self.journal.unknown(coid, why)
            found = await self.resolve(intent, sent)
            if found is not None:
                return found
        raise VenueUnavailable(f"order {coid} still not placed after a resend")

    def _send(self, intent: OrderIntent) -> Awaitable[VenueOrder]:
        c = self.client
        if intent.stop_price is not None:
            return c.place_stop_order(intent.client_order_id, intent.symbol, intent.side,
                                      intent.quantity, intent.stop_price)
        return c.place_market_order(intent.client_order_id, intent.symbol, intent.side,
                                    intent.quantity)

    # ------------------------------------------------------------------ resolving
    async def resolve(self, intent: OrderIntent, sent_ns: int) -> VenueOrder | None:
        """The venue's record of an order sent at ``sent_ns``, or ``None`` when it
        definitely is not there (safe to send).

        Raises
        ------
        OrderUnresolved
            Still absent after the window at a venue that cannot guarantee it stays so.
        VenueUnavailable
            ``unreachable_attempts`` lookups in a row could not reach the venue, or the
            caller is stopping.
        """
        tm, coid = self.timing, intent.client_order_id
        deadline = self.deadline_ns(sent_ns)
        delay, failures, last = tm.backoff_s, 0, ""
        while True:
            try:
                found = await self.lookup(intent, sent_ns)
                failures = 0
            except VenueUnavailable as exc:
                found, failures, last = None, failures + 1, str(exc)
                if failures >= tm.unreachable_attempts:
                    raise VenueUnavailable(
                        f"order {coid} is UNKNOWN: the venue cannot be asked ({last})"
                    ) from None
            else:
                if found is not None:
                    return found
                if getattr(self.client, "unique_client_order_ids", False):
                    return None  # a late first request would be refused as a duplicate
                if time.time_ns() >= deadline:
                    if self.lifetime_s is not None:
                        return None  # past the request lifetime: it never landed
                    raise OrderUnresolved(
                        coid, intent.symbol,
                        f"order {coid} ({intent.side.value} {intent.quantity:.10g} "
                        f"{intent.symbol}) is UNKNOWN: not found by client order id nor in "
                        f"the trade history for {(time.time_ns() - sent_ns) / NS:.1f}s, and "
                        f"{self.client.name} does not bound how late a request can land; "
                        "not resent, symbol halted: check the venue and resolve it by hand")
            left = max(deadline - time.time_ns(), 0) / NS
            wait = min(delay, left) if left > 0 and failures == 0 else delay
            if await self.pause(max(wait, 0.01)):
                raise VenueUnavailable(f"order {coid} is UNKNOWN: stopping ({last})")
            delay = min(delay * 2, tm.backoff_max_s)

    async def lookup(self, intent: OrderIntent, sent_ns: int) -> VenueOrder | None:
        """One look for the order: by client order id, else in the trade history since
        its send (a venue's order lookup can miss an order whose trades exist)."""
        coid, sym = intent.client_order_id, intent.symbol
        found = await self.call(f"fetch_order {coid}",
                                lambda: self.client.fetch_order(coid, sym))
        if found is not None:
            return found
        since = max(sent_ns - int(self.timing.margin_s * NS), 0)
        fills = [f for f in await self.call(
            f"fetch_fills {sym}", lambda: self.client.fetch_fills([sym], since))
            if f.client_order_id == coid]
        if not fills:
            return None
        qty = sum(f.quantity for f in fills)
        avg = sum(f.quantity * f.price for f in fills) / qty
        done = qty >= intent.quantity * (1 - 1e-9)
        return VenueOrder(
            client_order_id=coid, venue_order_id=fills[0].venue_order_id, symbol=sym,
            side=intent.side, quantity=max(intent.quantity, qty), filled=qty, avg_price=avg,
            status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
            stop_price=intent.stop_price)

