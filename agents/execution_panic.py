"""Cancel and flatten at a live venue directly: no Redis, no running agent.

``tradingmesh panic`` (:mod:`orchestrator.panic`) uses this when Redis cannot be reached:
the execution agent cannot trade then (its lease lives in Redis and is checked before
every venue call), and the ledger in Redis is out of reach, so everything here comes
from the settings, the database and the venue itself:

1. the broker client is built from the settings (``venue.kind`` and its section);
2. every order the database shows as possibly working (not final) and sent is
   **resolved** first (:meth:`backend.venues.placement.Placer.resolve`: looked up until
   the request lifetime since its send has passed), so a request still in flight cannot
   land after the flatten and re-open a position; a venue that cannot bound that (MT5,
   IB) leaves such an order in ``unresolved``;
3. every open order at the venue whose client order id is the mesh's (``tm-`` prefix),
   protective stops included, is cancelled;
4. the mesh's positions are the venue's holdings minus the **baseline** the database
   keeps (what the account held before the mesh traded: ``venue_baseline:<venue>``);
   each is closed by a reduce-only market order of the quantity rounded down to the
   venue's step, through the same send journal as the agent's (database row and send
   time before the call; client order id ``tm-k-...`` derived from the command id and an
   attempt number);
5. positions and the mesh's open orders are fetched again and reported.

Without a baseline in the database the mesh's part of the account is unknown: nothing is
closed (``scope="account"`` closes every position of the mesh's symbols instead).
Quantities in base units, prices quote/base, times ns UTC.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Literal

from pydantic import BaseModel

from agents.execution_records import BASELINE_STATE, StoreJournal
from backend.messages import NON_FINAL_STATUSES, ExitReason, OrderStatus, Side
from backend.persistence import Store
from backend.settings import Settings
from backend.venues.broker import (
    BrokerClient,
    OrderUnresolved,
    VenueError,
    VenueOrder,
    VenueRejected,
    VenueUnavailable,
)
from backend.venues.factory import make_client, placer_timing
from backend.venues.ledger import flatten_coid, same_quantity
from backend.venues.live_checks import mesh_positions
from backend.venues.placement import OrderIntent, Placer

__all__ = ["MESH_PREFIX", "PanicReport", "panic_at_venue"]

log = logging.getLogger("agents.execution_panic")

#: Client order ids the mesh gives its orders start with this.
MESH_PREFIX = "tm-"
SOURCE = "panic"


class PanicReport(BaseModel):
    """What ``tradingmesh panic`` did and what is left.

    ``path``: ``"venue"`` (this module: straight to the venue), ``"failsafe"`` (the
    failsafe with Redis, execution not running), ``"kill_switch"`` (the execution agent
    is running: the durable kill-switch command), ``"none"`` (nothing could be done at
    the venue).  ``cancelled``/``flattened``: client order ids; ``positions_left``:
    symbol -> signed base units still held by the mesh; ``unresolved``: orders whose
    outcome could not be settled (check them at the venue).
    """

    venue: str
    path: Literal["venue", "failsafe", "kill_switch", "none"]
    command_id: str
    latched: bool
    cancelled: list[str] = []
    flattened: list[str] = []
    open_orders_left: list[str] = []
    positions_left: dict[str, float] = {}
    unresolved: list[str] = []
    notes: list[str] = []
    error: str = ""

    @property
    def flat(self) -> bool:
        """Nothing of the mesh's is left open at the venue and nothing is unresolved."""
        return not (self.open_orders_left or self.positions_left or self.unresolved
                    or self.error)


async def panic_at_venue(settings: Settings, store: Store, *, command_id: str,
                         scope: Literal["mesh", "account"] = "mesh",
                         client: BrokerClient | None = None) -> PanicReport:
    """Resolve, cancel and close at the venue (see the module docstring).

    Parameters
    ----------
    settings
        Mesh settings (a live ``venue.kind``).
    store
        The mesh's database (opened durable): orders, send journal, baseline.
    command_id
        Id of this panic (audited; the closes' client order ids derive from it).
    scope
        ``"mesh"``: close venue - baseline; ``"account"``: close every position of the
        mesh's symbols.
    client
        A broker client (tests); built from ``settings`` when ``None``.

    Raises
    ------
    backend.venues.factory.VenueConfigError
        ``venue.kind`` has no broker client here (e.g. ``paper``).
    """
    client = client or make_client(settings)
    placer = Placer(client, StoreJournal(store, SOURCE), placer_timing(settings))
    report = PanicReport(venue=client.name, path="venue", command_id=command_id,
                         latched=True)
    await client.connect()
    try:
        report.unresolved = await _settle_sent_orders(store, placer)
        report.cancelled = await _cancel_mesh_orders(settings, store, placer)
        saved = await asyncio.to_thread(store.get_state, BASELINE_STATE + client.name)
        if saved is None and scope == "mesh":
            report.notes.append(
                f"no baseline for {client.name} in the database: the mesh's part of the "
                "account is unknown, nothing was closed (use --scope account to close "
                "every position of the mesh's symbols)")
            baseline = None
        else:
            baseline = {} if scope == "account" else dict(saved["positions"])  # type: ignore[index]
        if baseline is not None:
            report.flattened = await _close_positions(settings, store, placer, baseline,
                                                      command_id)
        held = await placer.call("fetch_positions", client.fetch_positions)
        mine = {s: q for s, q in mesh_positions(held, baseline or {}).items()
                if s in settings.symbols}
        report.positions_left = {s: q for s, q in mine.items()
                                 if abs(q) >= _step(client, s)} if baseline is not None \
            else mine
        report.open_orders_left = sorted(
            o.client_order_id for o in await placer.call(
                "fetch_open_orders", lambda: client.fetch_open_orders(settings.symbols))
            if o.client_order_id.startswith(MESH_PREFIX))
    except VenueError as exc:
        report.error = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        await client.close()
    return report


def round_down(quantity: float, step: float) -> float:
    """``quantity`` (>= 0, base units) rounded down to a multiple of ``step`` (0: as is),
    tolerant of float representation (``1.5`` with step ``0.001`` stays ``1.5``)."""
    if step <= 0:
        return quantity
    n = math.floor(quantity / step + 1e-9)
    return round(n * step, 12)


def _step(client: BrokerClient, symbol: str) -> float:
    fn = getattr(client, "quantity_step", None)
    try:
        return float(fn(symbol)) if fn is not None else 0.0
    except (KeyError, ValueError, VenueError):
        return 0.0


async def _settle_sent_orders(store: Store, placer: Placer) -> list[str]:
    """Resolve every non-final order the journal says was sent; the ones whose outcome
    stays unknown (client order ids)."""
    rows = [r for st in NON_FINAL_STATUSES
            for r in await asyncio.to_thread(store.orders, st)]
    unresolved = []
    for row in rows:
        sent = row.get("sent_ts")
        coid = row["client_order_id"]
        if sent is None or not coid.startswith(MESH_PREFIX):
            continue
        intent = OrderIntent(client_order_id=coid, symbol=row["symbol"],
                             side=Side(row["side"]), quantity=float(row["quantity"]),
                             stop_price=row.get("stop_price"))
        try:
            found = await placer.resolve(intent, int(sent))
        except OrderUnresolved as exc:
            log.error("%s", exc)
            unresolved.append(coid)
            continue
        await asyncio.to_thread(_record_status, store, coid, found)
    return unresolved


def _record_status(store: Store, coid: str, found: VenueOrder | None) -> None:
    if found is None:
        store.update_order_status(coid, OrderStatus.REJECTED, None,
                                  "panic: not at the venue after its request lifetime")
    else:
        store.update_order_status(coid, found.status, found.venue_order_id, found.reason)


async def _cancel_mesh_orders(settings: Settings, store: Store, placer: Placer) -> list[str]:
    client = placer.client
    open_orders = await placer.call("fetch_open_orders",
                                    lambda: client.fetch_open_orders(settings.symbols))
    cancelled = []
    for o in open_orders:
        if not o.client_order_id.startswith(MESH_PREFIX):
            continue  # the trader's own orders are not the mesh's to cancel
        try:
            done = await placer.call(f"cancel {o.client_order_id}",
                                     lambda o=o: client.cancel_order(o.client_order_id,  # type: ignore[misc]
                                                                    o.symbol))
        except VenueUnavailable:
            raise
        except VenueError as exc:  # gone meanwhile (filled/cancelled): fetched again below
            log.warning("cancel of %s refused: %s", o.client_order_id, exc)
            continue
        cancelled.append(o.client_order_id)
        await asyncio.to_thread(_record_status, store, o.client_order_id, done)
    return cancelled


async def _close_positions(settings: Settings, store: Store, placer: Placer,
                           baseline: dict[str, float], command_id: str,
                           attempts: int = 3) -> list[str]:
    """Close venue - baseline for every mesh symbol with market orders, fetching the
    positions again after each round (a partial fill is closed by the next attempt)."""
    client = placer.client
    closed: list[str] = []
    for attempt in range(attempts):
        held = await placer.call("fetch_positions", client.fetch_positions)
        todo = {s: q for s, q in mesh_positions(held, baseline).items()
                if s in settings.symbols}
        sent = False
        for sym, qty in sorted(todo.items()):
            size = round_down(abs(qty), _step(client, sym))
            if size <= 0 or same_quantity(size, 0.0):
                continue  # dust below the venue's step: cannot be sold
            intent = OrderIntent(
                client_order_id=flatten_coid(command_id, sym, attempt), symbol=sym,
                side=Side.SELL if qty > 0 else Side.BUY, quantity=size, reduce_only=True,
                correlation_id=command_id, exit_reason=ExitReason.FLATTEN)
            try:
                done = await placer.place(intent)
            except OrderUnresolved as exc:
                log.error("%s", exc)
                continue
            except VenueRejected as exc:  # reported: the position is left, said so
                log.error("close of %s refused: %s", sym, exc)
                continue
            await asyncio.to_thread(_record_status, store, intent.client_order_id, done)
            closed.append(intent.client_order_id)
            sent = True
        if not sent:
            break
    return closed
