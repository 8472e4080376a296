"""The faults of the venue-fault drill, injected at the exchange simulator or into the
execution agent at seeded random moments (``tradingmesh drill --venue exchange-sim``).

Every fault is a :data:`orchestrator.drills.faults.Fault` over a
:class:`~orchestrator.drills.venue_mesh.VenueDrillMesh`.  An exchange fault is armed for
the next matching request; the event counts only once the simulator's request log shows
it acted (so "5 injections" means 5 requests hit), and the recovery is the time until the
order it hit has an answer in our books (or, for a lookup, until execution is healthy).

============== ======================================================================
``late``       an order creation held past ccxt's timeout, landing inside recvWindow
``late-expired`` held past recvWindow: the exchange refuses it (-1021), it never lands
``expire``     a market order fills half and expires (too little liquidity)
``5xx``        503 on an order creation, 502 on an order lookup (nothing applied)
``429``        429 on an order creation and on the trade history (nothing applied)
``drop``       the connection dropped, after applying an order creation or before
``manual``     orders by hand: a resting limit order, a market sell of the mesh's coins
``kill-execution``  SIGKILL the execution agent
``reconcile-crash`` SIGKILL execution, then its reconciliation crashes twice on restart
============== ======================================================================

Fees taken in the base asset are on for the whole run (the simulator's ``fee_asset``).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from decimal import Decimal

from backend import channels
from backend.exchange_sim import BinanceError
from backend.exchange_sim.model import MIN_NOTIONAL
from backend.persistence import Store, make_engine
from backend.runtime import failpoints
from orchestrator.drills.faults import RECOVERY_TIMEOUT_S, Fault, FaultEvent, Window, moments
from orchestrator.drills.mesh import DrillError
from orchestrator.drills.venue_mesh import RECV_WINDOW_MS, TIMEOUT_MS, VenueDrillMesh

__all__ = ["VENUE_GAUNTLET", "VENUE_SCENARIOS", "settle"]

ORDER = "/api/v3/order"
TRADES = "/api/v3/myTrades"
WINDOW: Window = (0.1, 0.75)
#: Order statuses that mean the books have the order's answer.
SETTLED = ("ACCEPTED", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "REJECTED")
RECONCILE_POINTS = ("reconcile_adopted", "reconcile_fills", "reconcile_statuses",
                    "reconcile_before_commit")


def _store(mesh: VenueDrillMesh) -> Store:
    return Store(make_engine(f"sqlite:///{mesh.var_dir / 'tradingmesh.db'}"))


async def _hit(mesh: VenueDrillMesh, kind: str, since: int, timeout: float = 120.0):  # noqa: ANN202
    """The first request after index ``since`` the fault ``kind`` acted on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in list(mesh.sim.requests[since:]):
            if r.fault == kind:
                return r
        await asyncio.sleep(0.05)
    raise DrillError(f"the {kind} fault armed at the exchange found no request in "
                     f"{timeout:.0f}s (is the mesh trading?)")


async def _settled(mesh: VenueDrillMesh, coid: str, timeout: float = RECOVERY_TIMEOUT_S
                   ) -> tuple[float, str]:
    """Seconds until ``coid`` has an answer in our books (or its symbol is halted)."""
    t0 = time.monotonic()
    store = _store(mesh)
    try:
        while time.monotonic() - t0 < timeout:
            row = await asyncio.to_thread(store.get_order, coid)
            if row is not None and row["status"] in SETTLED:
                return time.monotonic() - t0, row["status"]
            if row is not None and row["status"] == "UNKNOWN" and row["symbol"].encode() in (
                    await mesh.redis.hkeys(channels.SYMBOL_HALTS_KEY)):
                return time.monotonic() - t0, "UNKNOWN, symbol halted"
            await asyncio.sleep(0.05)
    finally:
        store.close()
    raise DrillError(f"order {coid} still without an answer {timeout:.0f}s after the fault")


async def _healthy(mesh: VenueDrillMesh) -> float:
    t0 = time.monotonic()
    await mesh.until(lambda b: b["execution"] is not None
                     and b["execution"].state.value == "running", RECOVERY_TIMEOUT_S,
                     "execution healthy again")
    return time.monotonic() - t0


async def settle(mesh: VenueDrillMesh, timeout: float = RECOVERY_TIMEOUT_S) -> None:
    """After the feed ended: wait until none of our orders is still working or unanswered
    (protective stops rest on purpose; an UNKNOWN order of a halted symbol waits for a
    person) and execution is healthy, so the books are read at rest.

    Raises
    ------
    DrillError
        Not within ``timeout`` s.
    """
    store = _store(mesh)
    deadline = time.monotonic() + timeout
    try:
        while True:
            halted = {k.decode() for k in await mesh.redis.hkeys(channels.SYMBOL_HALTS_KEY)}
            busy = [o["client_order_id"] for o in await asyncio.to_thread(store.orders)
                    if not o["external"] and not o["client_order_id"].startswith("tm-p-")
                    and (o["status"] in ("ACCEPTED", "PARTIALLY_FILLED")
                         or (o["status"] == "NEW" and o["sent_ts"] is not None)
                         or (o["status"] == "UNKNOWN" and o["symbol"] not in halted))]
            hb = (await mesh.beats()).get("execution")
            if not busy and hb is not None and hb.state.value == "running":
                return
            if time.monotonic() > deadline:
                raise DrillError(f"orders still working {timeout:.0f}s after the feed ended: "
                                 f"{busy[:5]}; execution {hb.state.value if hb else 'down'}")
            await asyncio.sleep(0.2)
    finally:
        store.close()


def exchange_fault(name: str, plan: list[dict[str, object]]) -> Fault:
    """A fault armed at the exchange: injection ``i`` arms ``plan[i % len(plan)]``
    (``inject`` keyword arguments) for the next matching request."""

    async def fault(mesh: VenueDrillMesh, rng: random.Random, n: int,  # type: ignore[override]
                    window: Window = WINDOW) -> list[FaultEvent]:
        events = []
        for i, at in enumerate(moments(rng, mesh.total_bars, n, *window)):
            bar = await mesh.wait_cursor(at)
            spec = dict(plan[i % len(plan)])
            since = len(mesh.sim.requests)
            mesh.sim.inject(**spec)  # type: ignore[arg-type]
            req = await _hit(mesh, str(spec["kind"]), since)
            coid = req.params.get("newClientOrderId") or req.params.get("origClientOrderId")
            what = f"{spec['method']} {spec['path']}"
            if req.path == ORDER and req.method == "POST" and coid:
                rec, status = await _settled(mesh, coid)
                detail = f"{what} of {coid} hit ({req.outcome}); our books: {status}"
            else:
                rec = await _healthy(mesh)
                detail = f"{what} hit ({req.outcome}); execution healthy"
            events.append(FaultEvent(name, coid or what, bar, rec, detail=detail))
        return events

    return fault


def _manual_choices(mesh: VenueDrillMesh, rng: random.Random, sell_first: bool
                   ) -> list[tuple[str, str, str, str | None]]:
    """Orders by hand worth placing now, in the order to try them: ``(symbol, side, qty,
    limit price or None for a market order)`` -- a market sell of a quarter of the coins
    the account holds, and a resting limit buy at half the market for the smallest
    notional the exchange takes (the account may have little free quote left)."""
    book = mesh.sim.book
    floor = 2 * Decimal(MIN_NOTIONAL)
    sells, buys = [], []
    for m in book.markets.values():
        step, tick = Decimal(m.filters["stepSize"]), Decimal(m.filters["tickSize"])
        price = book.price(m.id)
        qty = (book.balances()[m.base][0] / 4 // step) * step
        if qty > 0 and qty * price >= floor:
            sells.append((m.symbol, "SELL", str(qty), None))
        px = (price / 2 // tick) * tick
        lots = -(-(floor / px) // step) * step  # ceil to the step
        buys.append((m.symbol, "BUY", str(max(lots, Decimal(m.filters["minQty"]))), str(px)))
    rng.shuffle(sells)
    rng.shuffle(buys)
    return sells + buys if sell_first else buys + sells


async def manual(mesh: VenueDrillMesh, rng: random.Random, n: int,
                 window: Window = WINDOW) -> list[FaultEvent]:
    """Orders placed by hand at the exchange (another client): a market sell of part of
    the coins the mesh holds, or a resting limit buy far below the market (whichever the
    account can pay for; the event fails only if the exchange refuses every one)."""
    events = []
    for i, at in enumerate(moments(rng, mesh.total_bars, n, *window)):
        bar = await mesh.wait_cursor(at)
        refused, placed = [], None
        for sym, side, qty, px in _manual_choices(mesh, rng, sell_first=bool(i % 2)):
            try:
                o = (mesh.sim.manual_trade(sym, side, qty) if px is None
                     else mesh.sim.add_order(sym, side, qty, px))
            except BinanceError as exc:
                refused.append(f"{side} {qty} {sym}: {exc}")
                continue
            kind = "market" if px is None else f"resting LIMIT @ {px}"
            placed = (sym, f"{kind} {side} {qty} {sym} by hand (order {o.order_id})")
            break
        if placed is None:
            events.append(FaultEvent("manual", "exchange", bar, None, ok=False,
                                     detail="the exchange refused every manual order: "
                                     + "; ".join(refused[:3])))
            continue
        rec = await _healthy(mesh)
        events.append(FaultEvent("manual", placed[0], bar, rec, detail=placed[1]))
    return events


async def kill_execution(mesh: VenueDrillMesh, rng: random.Random, n: int,
                         window: Window = WINDOW, crash_points: bool = False
                         ) -> list[FaultEvent]:
    """SIGKILL execution; with ``crash_points`` its reconciliation is also killed twice
    (at a point chosen in turn) on the way back.  Recovery = until it runs again."""
    events = []
    for i, at in enumerate(moments(rng, mesh.total_bars, n, *window)):
        bar = await mesh.wait_cursor(at)
        pid = await mesh.pid("execution")
        point = RECONCILE_POINTS[i % len(RECONCILE_POINTS)]
        if crash_points:
            failpoints.arm(mesh.failpoint_dir, "execution", point, times=2)
        os.kill(pid, signal.SIGKILL)
        rec = await mesh.wait_replaced("execution", pid, RECOVERY_TIMEOUT_S * 2)
        name = "reconcile-crash" if crash_points else "kill-execution"
        # the armed file is removed by the start that found both crashes used up
        ok = not (crash_points and failpoints.armed_path(
            mesh.failpoint_dir, "execution", point).exists())
        detail = f"pid {pid} killed" + (
            f"; reconciliation killed twice at {point} on restart" if crash_points else "")
        events.append(FaultEvent(name, "execution", bar, rec, ok=ok, detail=detail))
    return events


async def reconcile_crash(mesh: VenueDrillMesh, rng: random.Random, n: int,
                          window: Window = WINDOW) -> list[FaultEvent]:
    """See :func:`kill_execution` (``crash_points=True``)."""
    return await kill_execution(mesh, rng, n, window, crash_points=True)


_LATE_S = TIMEOUT_MS / 1000 + 0.8  # after ccxt gave up, well inside recvWindow
_EXPIRED_S = RECV_WINDOW_MS / 1000 + 1.5  # past recvWindow: refused when it arrives

#: scenario -> (fault, what it does)
VENUE_SCENARIOS: dict[str, tuple[Fault, str]] = {
    "late": (exchange_fault("late", [dict(kind="late", method="POST", path=ORDER,
                                         delay_s=_LATE_S)]),
             "order creation lands after ccxt's timeout (inside recvWindow)"),
    "late-expired": (exchange_fault("late-expired", [dict(
        kind="late", method="POST", path=ORDER, delay_s=_EXPIRED_S)]),
        "order creation held past recvWindow: refused on arrival, never lands"),
    "expire": (exchange_fault("expire", [dict(kind="expire", method="POST", path=ORDER,
                                              fill_ratio=0.5)]),
               "market order fills half and expires"),
    "5xx": (exchange_fault("5xx", [dict(kind="503", method="POST", path=ORDER),
                                   dict(kind="502", method="GET", path=ORDER)]),
            "503 on an order creation / 502 on a lookup, nothing applied"),
    "429": (exchange_fault("429", [dict(kind="429", method="POST", path=ORDER),
                                   dict(kind="429", method="GET", path=TRADES)]),
            "429 rate limit on an order creation / the trade history"),
    "drop": (exchange_fault("drop", [dict(kind="drop", method="POST", path=ORDER, apply=True),
                                     dict(kind="drop", method="POST", path=ORDER,
                                          apply=False)]),
             "connection dropped after (or before) an order creation is applied"),
    "manual": (manual, "orders placed by hand at the exchange"),
    "kill-execution": (kill_execution, "SIGKILL execution"),
    "reconcile-crash": (reconcile_crash,
                        "SIGKILL execution; its reconciliation crashes twice on restart"),
}

#: The venue gauntlet: every venue fault, interleaved in one mesh.
VENUE_GAUNTLET = tuple(VENUE_SCENARIOS)
