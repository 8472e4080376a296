"""The ledger of a live venue as it is kept in Redis: committed, pending, and saved in
the execution agent's transaction.

Changes are made on a *pending* clone of the committed ledger (:meth:`LedgerState.w`);
:meth:`LedgerState.stage` adds them to the agent's MULTI/EXEC (the blob, the orders that
changed, the fills applied), :meth:`LedgerState.commit` adopts them once it executed and
:meth:`LedgerState.rollback` drops them, so an event, its effect on the ledger and the
acknowledgement of its input are atomic.

Keys (:func:`ledger_keys`): ``venue:live:<name>:ledger`` (the blob without orders and
fills), ``…:orders`` (hash: client order id -> order), ``…:fills`` (hash: fill id ->
``OrderFilled``).

Only what changed is written to the two hashes, so they are whole only on top of what
Redis already held.  If Redis lost its data while an agent still held the ledger in
memory, the agent's next transaction writes the whole blob (positions) but only the
latest orders and fills: a *torn* ledger, whose fills a rebuild would apply a second
time (positions doubled).  The blob therefore carries the number of orders and fills
it goes with; :meth:`LedgerState.read` treats a ledger whose hashes hold fewer as lost
(``None``: rebuilt from the venue by reconciliation) and the first transaction after
it replaces the hashes whole.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from backend import channels
from backend.bus import as_text
from backend.messages import OrderFilled
from backend.venues.ledger import Accounting, Ledger

__all__ = ["LedgerState", "ledger_keys"]

log = logging.getLogger(__name__)

#: Blob fields giving the sizes of the orders and fills hashes it was written with.
_COUNTS = ("n_orders", "n_fills")


def ledger_keys(name: str) -> tuple[str, str, str]:
    """Redis keys of venue ``name``'s ledger: (blob, orders hash, fills hash)."""
    base = channels.live_ledger_key(name)
    return f"{base}:ledger", f"{base}:orders", f"{base}:fills"


class LedgerState:
    """The committed and the pending ledger of venue ``name`` (see the module docstring).

    Parameters
    ----------
    redis
        The execution agent's Redis client.
    name
        The venue's name (part of the keys).
    accounting
        ``"spot"`` or ``"margin"`` (see :mod:`backend.venues.ledger`).
    """

    def __init__(self, redis: Redis, name: str, accounting: Accounting) -> None:
        self.redis = redis
        self.keys = ledger_keys(name)
        self.ledger = Ledger(accounting=accounting)
        self.new_fills: dict[str, OrderFilled] = {}
        self._next: Ledger | None = None
        self._replace_hashes = False

    @property
    def cur(self) -> Ledger:
        """The pending ledger if there is one, else the committed one (read only)."""
        return self._next if self._next is not None else self.ledger

    def w(self) -> Ledger:
        """The pending ledger (a clone of the committed one), created on first change."""
        if self._next is None:
            self._next = self.ledger.clone()
        return self._next

    async def read(self) -> Ledger | None:
        """The ledger saved in Redis; ``None`` when there is none yet, or when it is torn
        (its hashes hold fewer orders or fills than its blob was written with: Redis lost
        data under it -- see the module docstring), which is logged."""
        blob_key, orders_key, fills_key = self.keys
        raw = await self.redis.get(blob_key)
        if raw is None:
            return None
        data = orjson.loads(raw)
        want = {k: data.pop(k, None) for k in _COUNTS}
        orders = await self.redis.hgetall(orders_key)
        data["orders"] = {as_text(k): orjson.loads(v) for k, v in orders.items()}
        fills = await self.redis.hgetall(fills_key)
        data["fills"] = {as_text(k): int(orjson.loads(v)["fill_time"])
                         for k, v in fills.items()}
        have = {"n_orders": len(orders), "n_fills": len(fills)}
        if any(n is not None and have[k] < n for k, n in want.items()):
            log.error("the ledger in Redis (%s) is torn: %d of %d orders and %d of %d fills "
                      "(Redis lost data under it); rebuilding it from the venue", blob_key,
                      have["n_orders"], want["n_orders"], have["n_fills"], want["n_fills"])
            self._replace_hashes = True
            return None
        return Ledger.model_validate(data)

    def reset(self, led: Ledger) -> None:
        """Make ``led`` the committed ledger, with nothing pending."""
        self.ledger, self._next, self.new_fills = led, None, {}

    def stage(self, pipe: Pipeline) -> None:
        """Stage the pending ledger: blob, changed orders, new fills."""
        if self._next is None:
            return
        new, old = self._next, self.ledger
        blob_key, orders_key, fills_key = self.keys
        if self._replace_hashes:  # a torn ledger's hashes go; this one's are written whole
            pipe.delete(orders_key, fills_key)
            old = Ledger(accounting=old.accounting)
        blob = new.model_dump(mode="json", exclude={"orders", "fills"})
        blob.update(n_orders=len(new.orders), n_fills=len(new.fills))
        pipe.set(blob_key, orjson.dumps(blob))
        changed: dict[Any, Any] = {k: v.model_dump_json() for k, v in new.orders.items()
                                   if old.orders.get(k) != v}
        if changed:
            pipe.hset(orders_key, mapping=changed)
        fills: dict[Any, Any] = {k: v.to_json() for k, v in self.new_fills.items()}
        if fills:
            pipe.hset(fills_key, mapping=fills)

    def commit(self) -> None:
        """Adopt the pending ledger after the transaction executed."""
        if self._next is not None:
            self.ledger = self._next
            self._replace_hashes = False
        self._next, self.new_fills = None, {}

    def rollback(self) -> None:
        """Forget the pending ledger (the transaction did not execute)."""
        self._next, self.new_fills = None, {}

    async def fills_of(self, client_order_ids: Collection[str]) -> list[OrderFilled]:
        """Fills applied for these orders (saved and pending), oldest first."""
        want = set(client_order_ids)
        raw = await self.redis.hvals(self.keys[2])
        fills = {f.fill_id: f for f in (OrderFilled.model_validate_json(r) for r in raw)
                 if f.client_order_id in want}
        fills.update({k: f for k, f in self.new_fills.items() if f.client_order_id in want})
        return sorted(fills.values(), key=lambda f: (f.fill_time, f.fill_id))
