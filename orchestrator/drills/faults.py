"""The faults a drill injects into a running mesh, each at seeded random moments.

Every fault is an async function ``(mesh, rng, injections) -> list[FaultEvent]`` that
waits for the replay to reach each chosen bar, injects, and measures the recovery (time
until the mesh is whole again).  The books are checked afterwards by
:mod:`orchestrator.drills.books`; a fault adds its own checks to each event (``ok`` and
``detail``), e.g. that no order reached the venue while risk was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
import psutil

from backend import channels
from backend.bus import DATA_FIELD, entry_key
from backend.messages import AgentState, SignalGenerated, SubmitOrder, decode
from backend.runtime import failpoints
from orchestrator.drills.mesh import DrillError, DrillMesh

#: How long a fault may take to recover before the drill calls it failed (s).
RECOVERY_TIMEOUT_S = 90.0


@dataclass
class FaultEvent:
    """One injected fault and what followed."""

    fault: str
    target: str
    at_bar: int
    recovery_s: float | None
    ok: bool = True
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return dict(self.__dict__)


#: Part of the replay (fractions of its bars) in which a fault's moments are drawn.
Window = tuple[float, float]
WINDOW: Window = (0.1, 0.8)
#: ``(mesh, rng, injections, window) -> events``
Fault = Callable[[DrillMesh, random.Random, int, Window], Awaitable[list[FaultEvent]]]


def moments(rng: random.Random, total_bars: int, n: int, lo: float = 0.1,
            hi: float = 0.8) -> list[int]:
    """``n`` sorted replay positions (bar counts) drawn uniformly in ``[lo, hi]`` of the run."""
    return sorted(int(rng.uniform(lo, hi) * total_bars) for _ in range(n))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


# ---------------------------------------------------------------------- SIGKILL
def kill_agent(role: str) -> Fault:
    """SIGKILL the agent of ``role`` (a strategy agent chosen at random) at each moment;
    recovery = until the supervisor has it running again in a new process."""

    async def fault(mesh: DrillMesh, rng: random.Random, n: int,
                    window: Window = WINDOW) -> list[FaultEvent]:
        ids = [a for a in mesh.agent_ids if a.split(":", 1)[0] == role]
        events = []
        for at in moments(rng, mesh.total_bars, n, *window):
            target = rng.choice(ids)
            bar = await mesh.wait_cursor(at)
            pid = await mesh.pid(target)
            os.kill(pid, signal.SIGKILL)
            rec = await mesh.wait_replaced(target, pid, RECOVERY_TIMEOUT_S)
            events.append(FaultEvent("sigkill", target, bar, rec, detail=f"pid {pid} killed"))
        return events

    return fault


async def kill_orchestrator(mesh: DrillMesh, rng: random.Random, n: int,
                           window: Window = WINDOW) -> list[FaultEvent]:
    """SIGKILL the orchestrator; the drill (as the launch supervisor) starts it again.

    Its agents get SIGTERM from the kernel (parent-death signal) and stop; the new
    orchestrator retires any that are left and starts a fresh set, which resume from
    their consumer groups.  Recovery = until every agent runs in a new process.
    """
    events = []
    for at in moments(rng, mesh.total_bars, n, *window):
        bar = await mesh.wait_cursor(at)
        before = {a: hb.pid for a, hb in (await mesh.beats()).items() if hb is not None}
        t0 = time.monotonic()
        pid = mesh.kill_orchestrator()
        mesh.start_orchestrator()
        await mesh.wait_all_running(RECOVERY_TIMEOUT_S, not_pids=set(before.values()))
        rec = time.monotonic() - t0
        alive = [f"{a}:{p}" for a, p in before.items() if not _gone(p)]
        events.append(FaultEvent(
            "sigkill", "orchestrator", bar, rec, ok=not alive,
            detail=f"orchestrator pid {pid} killed; restarted"
            + (f"; old agents still alive: {alive}" if alive else "; no old agent left")))
    return events


# ---------------------------------------------------------------------- SIGSTOP
async def hang_agent(mesh: DrillMesh, rng: random.Random, n: int,
                    window: Window = WINDOW) -> list[FaultEvent]:
    """SIGSTOP an agent (chosen at random) past its heartbeat deadline; the supervisor
    must declare it hung and replace it; SIGCONT the old process afterwards: it must be
    gone (killed), so it can do no harm when it wakes."""
    targets = [a for a in mesh.agent_ids if a != "optimizer"]
    events = []
    for at in moments(rng, mesh.total_bars, n, *window):
        target = rng.choice(targets)
        bar = await mesh.wait_cursor(at)
        pid = await mesh.pid(target)
        os.kill(pid, signal.SIGSTOP)
        try:
            rec = await mesh.wait_replaced(target, pid, RECOVERY_TIMEOUT_S)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        gone = _gone(pid)
        events.append(FaultEvent(
            "sigstop", target, bar, rec, ok=gone,
            detail=f"pid {pid} stopped; replaced after the heartbeat TTL "
            f"({mesh.settings.orchestrator.heartbeat_ttl_s:g}s); "
            + ("old process gone (killed while stopped)" if gone
               else "OLD PROCESS STILL ALIVE after SIGCONT")))
    return events


# ---------------------------------------------------------------------- Redis
async def restart_redis(mesh: DrillMesh, rng: random.Random, n: int,
                       window: Window = WINDOW) -> list[FaultEvent]:
    """Restart redis-server (SHUTDOWN, which flushes the AOF, then start on the same port
    and data).  Recovery = from Redis being back until a canary bar (the first bar
    published after the restart) has been delivered to and acknowledged by every
    consumer of ``market_data`` (every strategy agent and execution) and every agent has
    heartbeated again."""
    groups = [a for a in mesh.agent_ids if a.startswith("strategy:")]
    events = []
    for at in moments(rng, mesh.total_bars, n, *window):
        bar = await mesh.wait_cursor(at)
        last = await mesh.redis.xrevrange(channels.MARKET_DATA, count=1)
        last_id = last[0][0].decode() if last else "0-0"
        t_down = time.monotonic()
        await asyncio.to_thread(mesh.server.restart)
        t_up = time.monotonic()
        up_ns = time.time_ns()
        canary = await _canary(mesh, last_id, [*groups, "execution"])
        await mesh.until(lambda b, t=up_ns: all(h is not None and h.ts >= t for h in b.values()),
                         RECOVERY_TIMEOUT_S, "every agent heartbeating after the restart")
        rec = time.monotonic() - t_up
        events.append(FaultEvent(
            "redis_restart", "redis", bar, rec,
            detail=f"down {t_up - t_down:.2f}s; canary bar {canary} acked by every "
                   "market_data consumer"))
    return events


async def _canary(mesh: DrillMesh, after_id: str, group_names: list[str]) -> str:
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    canary: str | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if canary is None:
                newer = await mesh.redis.xrange(channels.MARKET_DATA, f"({after_id}", "+",
                                                count=1)
                canary = newer[0][0].decode() if newer else None
            if canary is not None:
                groups = {(g["name"].decode()): g
                          for g in await mesh.redis.xinfo_groups(channels.MARKET_DATA)}
                if all(name in groups and entry_key(groups[name]["last-delivered-id"].decode())
                       >= entry_key(canary) and not int(groups[name]["pending"])
                       for name in group_names):
                    return canary
        await asyncio.sleep(0.02)
    raise DrillError(f"no canary bar end to end within {RECOVERY_TIMEOUT_S:.0f}s after the "
                     f"Redis restart (last bar before: {after_id}, canary {canary})")


# ---------------------------------------------------------------------- fail closed
def agent_down(agent_id: str) -> Fault:
    """Stop ``agent_id`` (risk or compliance) through the API and keep it down while
    new signals arrive: no order may come from a signal generated while it was down
    until it is back (fail closed).  Recovery = start request until it runs again."""

    async def fault(mesh: DrillMesh, rng: random.Random, n: int,
                    window: Window = WINDOW) -> list[FaultEvent]:
        events = []
        for at in moments(rng, mesh.total_bars, n, window[0], min(window[1], 0.6)):
            bar = await mesh.wait_cursor(at)
            pid = await mesh.pid(agent_id)
            await mesh.api("POST", f"/api/agents/{agent_id}/stop")
            down_ms = await mesh.redis_time_ms()
            waiting = channels.SIGNALS_APPROVED if agent_id == "risk" else channels.SIGNALS
            held = await _entries_after(mesh, waiting, down_ms, want=2,
                                        until_bar=min(bar + mesh.total_bars // 6,
                                                      mesh.total_bars))
            up_ms = await mesh.redis_time_ms()
            leaked = await _orders_from_signals_after(mesh, down_ms, up_ms)
            await mesh.api("POST", f"/api/agents/{agent_id}/start")
            rec = await mesh.wait_replaced(agent_id, pid, RECOVERY_TIMEOUT_S)
            events.append(FaultEvent(
                "down", agent_id, bar, rec, ok=not leaked,
                detail=f"{held} {waiting} entries waited for {agent_id} while it was down; "
                       f"{len(leaked)} orders from them reached execution before it was back"
                       + (f": {leaked[:3]}" if leaked else " (fail closed)")))
        return events

    return fault


async def _entries_after(mesh: DrillMesh, stream: str, since_ms: int, want: int,
                         until_bar: int, timeout: float = 60.0) -> int:
    """Wait until ``stream`` got ``want`` entries after ``since_ms`` (or the replay got to
    ``until_bar``); how many it got."""
    deadline = time.monotonic() + timeout
    while True:
        n = len(await mesh.redis.xrange(stream, f"{since_ms}-0", "+"))
        if n >= want or await mesh.cursor() >= until_bar or time.monotonic() > deadline:
            return n
        await asyncio.sleep(0.05)


async def _orders_from_signals_after(mesh: DrillMesh, since_ms: int, until_ms: int) -> list[str]:
    late = set()
    for _, fields in await mesh.redis.xrange(channels.SIGNALS, f"{since_ms}-0", "+"):
        with contextlib.suppress(ValueError):
            msg = decode(fields[DATA_FIELD])
            if isinstance(msg, SignalGenerated):
                late.add(msg.id)
    leaked = []
    for _, fields in await mesh.redis.xrange(channels.ORDERS, f"{since_ms}-0", f"{until_ms}-0"):
        with contextlib.suppress(ValueError, KeyError):
            msg = decode(fields[DATA_FIELD])
            if isinstance(msg, SubmitOrder) and msg.signal_id in late:
                leaked.append(msg.client_order_id)
    return leaked


# ---------------------------------------------------------------------- crash loop
async def execution_crash_loop(mesh: DrillMesh, rng: random.Random, n: int,
                               window: Window = (0.1, 0.5)) -> list[FaultEvent]:
    """Make the execution agent crash at every start, then kill it: the supervisor must
    give up after ``max_restarts``, latch HALTED and cancel every open order (failsafe).
    Then an operator disarms the fault and starts execution again; the books must still
    balance.  Recovery = kill until HALTED with no open order left.  One injection per
    run (the halt is latched for the rest of it)."""
    del n
    cfg = mesh.settings.orchestrator
    (at,) = moments(rng, mesh.total_bars, 1, *window)
    await mesh.wait_cursor(at)
    failpoints.arm(mesh.failpoint_dir, "execution", "start")
    pid = await mesh.pid("execution")
    resting = await _kill_with_open_order(mesh, pid)
    bar = await mesh.cursor()
    t0 = time.monotonic()
    deadline = time.monotonic() + cfg.restart_backoff_max_s * cfg.max_restarts + 120
    info: dict = {}
    while time.monotonic() < deadline:
        info = await mesh.api("GET", "/api/agents/execution")
        if info.get("state") == "given_up":
            break
        await asyncio.sleep(0.1)
    else:
        raise DrillError(f"execution was not given up: {info}")
    halted = await _until_halted_and_cancelled(mesh)
    rec = time.monotonic() - t0
    failpoints.disarm(mesh.failpoint_dir, "execution", "start")
    await mesh.api("POST", "/api/agents/execution/start")
    await mesh.until(lambda b: b["execution"] is not None and b["execution"].pid != pid
                     and b["execution"].state is AgentState.RUNNING, RECOVERY_TIMEOUT_S,
                     "execution running after the operator's start")
    restarts = int(info.get("restarts", 0))
    ok = restarts <= cfg.max_restarts and halted["halted"] and not halted["open_orders"]
    return [FaultEvent(
        "crash_loop", "execution", bar, rec, ok=ok,
        detail=f"killed with {resting or 'no'} order(s) resting at the venue; "
               f"{restarts} restarts (limit {cfg.max_restarts}), then given up; HALTED "
               f"({halted['reason'][:80]}); open orders at the venue after the failsafe: "
               f"{halted['open_orders']}; operator disarmed and started execution again")]


async def _kill_with_open_order(mesh: DrillMesh, pid: int, timeout: float = 45.0) -> list[str]:
    """SIGKILL execution (``pid``) while an order it accepted rests at the venue.

    The next order on the ``orders`` stream is awaited (blocking XREAD); market_data is
    paused (SIGSTOP, well under its heartbeat TTL) so no bar can fill it; once the paper
    book shows it open, execution is killed and market_data resumed.  If no order comes
    within ``timeout`` s, execution is killed anyway; returns the resting client order ids.
    """
    md_pid = await mesh.pid("market_data")
    last = await mesh.redis.xrevrange(channels.ORDERS, count=1)
    last_id = last[0][0].decode() if last else "0-0"
    deadline = time.monotonic() + timeout
    resting: list[str] = []
    while time.monotonic() < deadline and not resting:
        if await mesh.redis.exists(channels.REPLAY_DONE_KEY):
            break  # no bar left to make an order
        got = await mesh.redis.xread({channels.ORDERS: last_id}, count=1, block=1000)
        if not got:
            continue
        last_id = got[0][1][-1][0].decode()
        os.kill(md_pid, signal.SIGSTOP)
        try:
            until = time.monotonic() + 2.0
            while time.monotonic() < until and not resting:
                raw = await mesh.redis.get(channels.PAPER_VENUE_KEY)
                resting = sorted(orjson.loads(raw).get("open_orders", {})) if raw else []
                if not resting:
                    await asyncio.sleep(0.005)
            if resting:
                os.kill(pid, signal.SIGKILL)
        finally:
            os.kill(md_pid, signal.SIGCONT)
    if not resting:
        os.kill(pid, signal.SIGKILL)
    return resting


async def _until_halted_and_cancelled(mesh: DrillMesh) -> dict:
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        raw_halt = await mesh.redis.get(channels.HALT_KEY)
        raw_book = await mesh.redis.get(channels.PAPER_VENUE_KEY)
        audits = await mesh.redis.xrange(channels.AUDIT, "-", "+")
        cancelled = any(b"failsafe_cancel" in f.get(DATA_FIELD, b"")
                        for _, f in audits)
        if raw_halt and cancelled:
            book = orjson.loads(raw_book) if raw_book else {}
            return {"halted": bool(orjson.loads(raw_halt).get("halted")),
                    "reason": orjson.loads(raw_halt).get("reason", ""),
                    "open_orders": sorted(book.get("open_orders", {}))}
        await asyncio.sleep(0.1)
    raise DrillError("HALTED + failsafe cancel not seen within "
                     f"{RECOVERY_TIMEOUT_S:.0f}s of giving up on execution")
