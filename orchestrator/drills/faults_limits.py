"""Drill faults for the latch, the limits and the bus (issue 15).

* ``breaker-trip``: a loss forced past the daily-drawdown limit (a portfolio mark with the
  equity below it, as execution would publish after a crash in prices) while an entry
  order rests at the venue: the breaker must latch (Redis and the database), the resting
  entry be cancelled, no entry be sent after the trip and closes still pass;
* ``risk-backlog``: risk stopped while approvals queue, then started: no symbol may get
  more than one entry from the backlog (what is in flight counts), signals far behind the
  latest mark are refused as stale, every queued approval gets a decision;
* ``db-errors``: the database refuses every write for a few seconds
  (:data:`backend.runtime.failpoints.DB_REFUSE_FILE`): no input may be dead-lettered or dropped,
  no agent may crash, the mesh goes on when the database answers;
* ``redis-data-loss`` (exchange-sim venue): Redis restarted *without its data* mid-run:
  the orchestrator must see the loss, halt trading (database first), and the books must
  still agree with the exchange's records.

Each is a :data:`orchestrator.drills.faults.Fault`; the books are checked afterwards as
for every drill.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import time
from collections import Counter

import orjson

from backend import channels
from backend.bus import DATA_FIELD
from backend.mesh.halt import HALT_STATE, parse_halt
from backend.messages import (
    ComplianceDecided,
    DeadLettered,
    PortfolioMarked,
    RiskDecided,
    SubmitOrder,
    decode,
)
from backend.persistence import Store, make_engine
from backend.runtime import failpoints
from backend.venues.paper.adapter import ORDERS_HASH
from orchestrator.drills.faults import (
    RECOVERY_TIMEOUT_S,
    WINDOW,
    FaultEvent,
    Window,
    moments,
)
from orchestrator.drills.mesh import DrillError, DrillMesh

__all__ = ["breaker_trip", "db_errors", "redis_data_loss", "risk_backlog"]

#: How long the database refuses writes in ``db-errors`` (s).
DB_REFUSE_S = 4.0
#: Bars (per symbol) the replay runs on while risk is down in ``risk-backlog``: more than
#: ``risk.max_signal_age_s`` (900 s = 3 five-minute bars) so some approvals go stale.
BACKLOG_BARS = 6


def _decode_all(entries: list) -> list:  # noqa: ANN001 - redis stream entries
    out = []
    for eid, fields in entries:
        with contextlib.suppress(ValueError, KeyError):
            out.append((int(eid.split(b"-")[0]), decode(fields[DATA_FIELD])))
    return out


async def _stream(mesh: DrillMesh, stream: str, since_ms: int = 0) -> list:
    return _decode_all(await mesh.redis.xrange(stream, f"{since_ms}-0", "+"))


def _store(mesh: DrillMesh) -> Store:
    return Store(make_engine(f"sqlite:///{mesh.var_dir / 'tradingmesh.db'}"))


# ---------------------------------------------------------------------- breaker trip
async def _resting_entry(mesh: DrillMesh, timeout: float = 60.0) -> str:
    """A non-reduce-only order resting in the paper book (``""`` if none came)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not await mesh.redis.exists(
            channels.REPLAY_DONE_KEY):
        raw = await mesh.redis.get(channels.PAPER_VENUE_KEY)
        book = orjson.loads(raw) if raw else {}
        entries = [c for c, o in book.get("open_orders", {}).items()
                   if not o.get("reduce_only")]
        if entries:
            return sorted(entries)[0]
        await asyncio.sleep(0.002)
    return ""


async def _tripped(mesh: DrillMesh, resting: str) -> dict | None:
    """The breaker's latch and the resting entry's final status, once both are there."""
    halt = parse_halt(await mesh.redis.get(channels.HALT_KEY))
    if halt is None or halt.kind != "circuit_breaker":
        return None
    status = await mesh.redis.hget(ORDERS_HASH, resting)
    if status not in (b"CANCELLED", b"FILLED"):
        return None
    return {"halt": halt, "status": status.decode()}


async def _force_loss(mesh: DrillMesh, resting: str, limit: float
                      ) -> tuple[float, float, dict | None]:
    """Publish a mark whose equity is below the drawdown limit (as execution would after
    a fall in prices); wait up to 3 s (market_data paused) for the trip.  Returns the
    forced equity, when it was published (monotonic s) and :func:`_tripped`'s answer."""
    raw = await mesh.redis.get(channels.PORTFOLIO_KEY)
    if raw is None:
        raise DrillError("no portfolio mark to force a loss on")
    mark = decode(raw)
    assert isinstance(mark, PortfolioMarked)
    equity = mark.day_start_equity * (1 - limit) * 0.99
    loss = mark.model_copy(update={
        "id": f"drill-loss-{mark.bar_seq}", "equity": equity,
        "cash": mark.cash - (mark.equity - equity)})
    t0 = time.monotonic()
    await mesh.redis.xadd(channels.TRADING_EVENTS, {DATA_FIELD: loss.to_json()})
    got = None
    while got is None and time.monotonic() < t0 + 3.0:
        got = await _tripped(mesh, resting)
        if got is None:
            await asyncio.sleep(0.02)
    return equity, t0, got


async def breaker_trip(mesh: DrillMesh, rng: random.Random, n: int,
                       window: Window = WINDOW) -> list[FaultEvent]:
    """Force a loss past the daily-drawdown limit with an entry resting (once: the latch
    holds for the rest of the run)."""
    del n
    (at,) = moments(rng, mesh.total_bars, 1, *window)
    bar = await mesh.wait_cursor(at)
    limit = mesh.settings.risk.daily_drawdown_limit
    # market_data paused (well under its heartbeat TTL) once an entry rests, so no bar
    # fills it before the trip: the breaker must cancel it
    md_pid = await mesh.pid("market_data")
    resting, equity, got, t0 = "", 0.0, None, time.monotonic()
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while not resting and time.monotonic() < deadline and \
            not await mesh.redis.exists(channels.REPLAY_DONE_KEY):
        os.kill(md_pid, signal.SIGSTOP)
        try:
            resting = await _resting_entry(mesh, timeout=0.5)
            if resting:
                equity, t0, got = await _force_loss(mesh, resting, limit)
        finally:
            os.kill(md_pid, signal.SIGCONT)
        if not resting:
            await asyncio.sleep(0.3)  # let a bar or two through, look again
    if not resting:
        raise DrillError("no entry order came to rest at the venue")
    while got is None and time.monotonic() < deadline:
        got = await _tripped(mesh, resting)
        if got is None:
            await asyncio.sleep(0.05)
    if got is None:
        raise DrillError("the breaker did not latch and cancel within "
                         f"{RECOVERY_TIMEOUT_S:.0f}s of the forced loss")
    rec = time.monotonic() - t0
    halt = got["halt"]
    await mesh.wait_cursor(mesh.total_bars)  # the rest of the run, halted
    after = [m for _ms, m in await _stream(mesh, channels.ORDERS)
             if isinstance(m, SubmitOrder) and m.ts > halt.ts]
    entries = [o.client_order_id for o in after if not o.reduce_only]
    closes = [o for o in after if o.reduce_only]
    store = _store(mesh)
    try:
        durable = store.get_state(HALT_STATE)
    finally:
        store.close()
    ok = (got["status"] == "CANCELLED" and not entries
          and durable is not None and durable.get("kind") == "circuit_breaker")
    return [FaultEvent(
        "breaker_trip", "risk", bar, rec, ok=ok,
        detail=f"equity forced to {equity:.6g} (limit {limit:.2%}); latched "
               f"{'in Redis and the database' if durable else 'in Redis only'}; resting "
               f"entry {resting or 'none seen'} -> {got['status']}; for the rest of the "
               f"run {len(entries)} entries sent{(' ' + str(entries[:3])) if entries else ''}"
               f", {len(closes)} closes passed")]


# ---------------------------------------------------------------------- risk backlog
async def risk_backlog(mesh: DrillMesh, rng: random.Random, n: int,
                       window: Window = WINDOW) -> list[FaultEvent]:
    """Stop risk while approvals queue for :data:`BACKLOG_BARS` bars per symbol, start it;
    check what the backlog became."""
    events = []
    per_bar = len(mesh.settings.symbols)
    for at in moments(rng, mesh.total_bars, n, window[0], min(window[1], 0.6)):
        bar = await mesh.wait_cursor(at)
        pid = await mesh.pid("risk")
        await mesh.api("POST", "/api/agents/risk/stop")
        down_ms = await mesh.redis_time_ms()
        want = BACKLOG_BARS * per_bar  # every_tick: one approval per bar and symbol
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while True:
            queued = [m for _ms, m in await _stream(mesh, channels.SIGNALS_APPROVED, down_ms)
                      if isinstance(m, ComplianceDecided)]
            if len(queued) >= want or time.monotonic() > deadline or \
                    await mesh.redis.exists(channels.REPLAY_DONE_KEY):
                break
            await asyncio.sleep(0.05)
        await mesh.api("POST", "/api/agents/risk/start")
        t0 = time.monotonic()
        await mesh.wait_replaced("risk", pid, RECOVERY_TIMEOUT_S)
        ids = {q.signal.id for q in queued}

        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        got = None
        while got is None and time.monotonic() < deadline:
            got = await _decided(mesh, down_ms, ids)
            if got is None:
                await asyncio.sleep(0.05)
        if got is None:
            raise DrillError(f"risk did not decide the {len(ids)} queued approvals within "
                             f"{RECOVERY_TIMEOUT_S:.0f}s")
        rec = time.monotonic() - t0
        orders, refused = got
        entries = Counter(o.symbol for o in orders if not o.reduce_only)
        stacked = {s: k for s, k in entries.items() if k > 1}
        rules = Counter(r.rule for r in refused)
        events.append(FaultEvent(
            "backlog", "risk", bar, rec, ok=not stacked,
            detail=f"{len(ids)} approvals queued over {BACKLOG_BARS} bars/symbol; "
                   f"{len(orders)} orders ({sum(entries.values())} entries, "
                   f"{len(orders) - sum(entries.values())} closes), refused "
                   f"{dict(rules) or 'none'}"
                   + (f"; STACKED entries {stacked}" if stacked else
                      "; at most one entry per symbol")))
    return events


async def _decided(mesh: DrillMesh, since_ms: int, ids: set[str]
                   ) -> tuple[list[SubmitOrder], list[RiskDecided]] | None:
    """Risk's orders and refusals for the signals ``ids`` once each has one, else None."""
    orders = [m for _ms, m in await _stream(mesh, channels.ORDERS, since_ms)
              if isinstance(m, SubmitOrder) and m.signal_id in ids]
    refused = [m for _ms, m in await _stream(mesh, channels.SIGNALS_REJECTED, since_ms)
               if isinstance(m, RiskDecided) and m.signal.id in ids]
    if len({o.signal_id for o in orders} | {r.signal.id for r in refused}) < len(ids):
        return None
    return orders, refused


# ---------------------------------------------------------------------- database errors
async def db_errors(mesh: DrillMesh, rng: random.Random, n: int,
                    window: Window = WINDOW) -> list[FaultEvent]:
    """Refuse every database write for :data:`DB_REFUSE_S` s, ``n`` times."""
    events = []
    flag = mesh.failpoint_dir / failpoints.DB_REFUSE_FILE
    mesh.failpoint_dir.mkdir(parents=True, exist_ok=True)
    for at in moments(rng, mesh.total_bars, n, *window):
        bar = await mesh.wait_cursor(at)
        before = {a: hb.pid for a, hb in (await mesh.beats()).items() if hb is not None}
        since = await mesh.redis_time_ms()
        flag.touch()
        try:
            degraded = await _watch_degraded(mesh, DB_REFUSE_S)
        finally:
            flag.unlink(missing_ok=True)
        t_up = time.monotonic()
        up_ns = time.time_ns()
        moved = await mesh.cursor()
        await mesh.until(
            lambda b, t=up_ns: all(h is not None and h.ts >= t and h.state.value == "running"
                                   for h in b.values()),
            RECOVERY_TIMEOUT_S, "every agent running again after the database came back")
        await mesh.wait_cursor(min(moved + len(mesh.settings.symbols), mesh.total_bars))
        rec = time.monotonic() - t_up
        dead = [m for _ms, m in await _stream(mesh, channels.DEAD_LETTER, since)
                if isinstance(m, DeadLettered)]
        after = {a: hb.pid for a, hb in (await mesh.beats()).items() if hb is not None}
        restarted = sorted(a for a, p in before.items() if after.get(a) != p)
        events.append(FaultEvent(
            "db_refused", "database", bar, rec, ok=not dead and not restarted,
            detail=f"writes refused {DB_REFUSE_S:g}s; degraded meanwhile: "
                   f"{sorted(degraded) or 'none'}; dead letters {len(dead)}; agents "
                   f"restarted {restarted or 'none'}"))
    return events


async def _watch_degraded(mesh: DrillMesh, seconds: float) -> set[str]:
    """The agents seen ``degraded`` while the database refuses writes."""
    seen: set[str] = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for a, hb in (await mesh.beats()).items():
            if hb is not None and hb.state.value == "degraded":
                seen.add(a)
        await asyncio.sleep(0.1)
    return seen


# ---------------------------------------------------------------------- Redis data loss
async def redis_data_loss(mesh: DrillMesh, rng: random.Random, n: int,
                          window: Window = WINDOW) -> list[FaultEvent]:
    """Restart redis-server with its data deleted (once: the halt latches)."""
    del n
    (at,) = moments(rng, mesh.total_bars, 1, *window)
    bar = await mesh.wait_cursor(at)
    server = mesh.server

    def wipe_and_start() -> None:
        server.stop()
        for name in ("appendonlydir", "appendonly.aof", "dump.rdb"):
            p = server.data_dir / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        server._fixed_port = True  # noqa: SLF001 - the same URL for every client
        server.start()

    t0 = time.monotonic()
    await asyncio.to_thread(wipe_and_start)
    up_ns = time.time_ns()
    # What was created before Redis came back empty (a signal decided from a bar read
    # before the stop, published into the dying server or not at all) went with the data.
    mesh.data_lost_ns = up_ns
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    halt = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ConnectionError):
            halt = parse_halt(await mesh.redis.get(channels.HALT_KEY))
        if halt is not None and halt.kind == "data_loss":
            break
        await asyncio.sleep(0.1)
    else:
        raise DrillError("the orchestrator did not halt on Redis' data loss within "
                         f"{RECOVERY_TIMEOUT_S:.0f}s")
    await mesh.until(lambda b, t=up_ns: all(h is not None and h.ts >= t for h in b.values()),
                     RECOVERY_TIMEOUT_S, "every agent heartbeating after the data loss")
    rec = time.monotonic() - t0
    store = _store(mesh)
    try:
        durable = store.get_state(HALT_STATE)
    finally:
        store.close()
    ok = durable is not None and durable.get("kind") == "data_loss"
    return [FaultEvent(
        "redis_data_loss", "redis", bar, rec, ok=ok,
        detail=f"redis-server restarted with no data; halted ({halt.reason[:60]}...) "
               f"{'in Redis and the database' if ok else 'NOT in the database'}")]
