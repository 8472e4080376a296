"""The drill runner: the scenarios by name, one fresh mesh per run with its faults, the
books checked after each, the summaries.

Each *scenario* is one fresh mesh (its own redis-server with AOF, database and agents,
the orchestrator as a child process — :class:`orchestrator.drills.mesh.DrillMesh`)
replaying ``limit`` bars per symbol at full speed while one kind of fault is injected
``injections`` times at seeded random moments (:mod:`orchestrator.drills.faults`).  When
the replay has finished and every consumer caught up, the orchestrator is stopped and
the books are checked (:mod:`orchestrator.drills.books`).  The same seed gives the same
moments and targets.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from backend.persistence import Store, make_engine
from orchestrator.drills import faults as f
from orchestrator.drills import faults_bus as bus_faults
from orchestrator.drills import faults_limits as limits
from orchestrator.drills.books import BooksReport, check_books
from orchestrator.drills.mesh import DrillError, DrillMesh
from orchestrator.drills.venue_books import check_venue_books
from orchestrator.drills.venue_faults import VENUE_GAUNTLET, VENUE_SCENARIOS, settle
from orchestrator.drills.venue_mesh import VenueDrillMesh

#: scenario name -> (fault, what it does)
SCENARIOS: dict[str, tuple[f.Fault, str]] = {
    "kill-strategy": (f.kill_agent("strategy"), "SIGKILL a strategy agent"),
    "kill-compliance": (f.kill_agent("compliance"), "SIGKILL compliance"),
    "kill-risk": (f.kill_agent("risk"), "SIGKILL risk"),
    "kill-execution": (f.kill_agent("execution"), "SIGKILL execution"),
    "kill-market_data": (f.kill_agent("market_data"), "SIGKILL market_data"),
    "kill-orchestrator": (f.kill_orchestrator, "SIGKILL the orchestrator; relaunch it"),
    "hang": (f.hang_agent, "SIGSTOP an agent past its heartbeat TTL, SIGCONT later"),
    "redis-restart": (f.restart_redis, "restart redis-server (AOF) mid-run"),
    "risk-down": (f.agent_down("risk"), "risk stopped: nothing new may reach execution"),
    "compliance-down": (f.agent_down("compliance"), "compliance stopped: fail closed"),
    "execution-crashloop": (f.execution_crash_loop,
                            "execution crashes at every start: give up, HALT, cancel"),
    "hostile-payloads": (bus_faults.hostile,
                         "malformed/oversized/wrongly-typed payloads on every channel"),
    "slow-consumer": (bus_faults.slow_consumer,
                      "a paused pub/sub subscriber is dropped by Redis and recovers"),
    "breaker-trip": (limits.breaker_trip, "a loss forced past the drawdown limit with an "
                     "entry resting: latch, cancel entries, closes pass"),
    "risk-backlog": (limits.risk_backlog, "risk down while approvals queue, then back: no "
                     "stacked entries, stale signals refused"),
    "db-errors": (limits.db_errors, "the database refuses writes for a few seconds: "
                  "nothing dropped or dead-lettered"),
}


#: Scenarios run on a busy mesh (a signal on every bar, a binding exposure cap:
#: :data:`orchestrator.drills.mesh.BUSY`): the limits need orders to act on.
BUSY_SCENARIOS = frozenset({"breaker-trip", "risk-backlog", "db-errors"})


#: The gauntlet: every fault once, in this order, in one mesh (the crash loop last:
#: it latches HALTED for the rest of the run).
GAUNTLET = ("kill-strategy", "kill-compliance", "kill-risk", "kill-execution",
            "kill-market_data", "hang", "redis-restart", "risk-down", "compliance-down",
            "hostile-payloads", "slow-consumer", "kill-orchestrator", "execution-crashloop")


async def gauntlet(mesh: DrillMesh, rng: random.Random, n: int,
                   window: f.Window = (0.04, 0.8)) -> list[f.FaultEvent]:
    """Every fault of :data:`GAUNTLET` once, each in its own slice of ``window``."""
    del n
    lo, hi = window
    step = (hi - lo) / len(GAUNTLET)
    events: list[f.FaultEvent] = []
    for i, name in enumerate(GAUNTLET):
        fault, _ = SCENARIOS[name]
        # the crash loop waits for an order resting at the venue: give it room to come
        end = hi if name == "execution-crashloop" else lo + (i + 1) * step
        try:
            events += await fault(mesh, rng, 1, (lo + i * step, end))
        except DrillError as exc:
            exc.events = events  # what was injected before, for the report
            raise
    return events


SCENARIOS["gauntlet"] = (gauntlet, "every fault above once, in one mesh (one run)")


async def venue_gauntlet(mesh: DrillMesh, rng: random.Random, n: int,
                         window: f.Window = (0.05, 0.8)) -> list[f.FaultEvent]:
    """Every venue fault ``n`` times in one mesh on the exchange simulator, each fault in
    its own slice of ``window``."""
    lo, hi = window
    step = (hi - lo) / len(VENUE_GAUNTLET)
    events: list[f.FaultEvent] = []
    for i, name in enumerate(VENUE_GAUNTLET):
        fault, _ = VENUE_SCENARIOS[name]
        try:
            events += await fault(mesh, rng, n, (lo + i * step, lo + (i + 1) * step))
        except DrillError as exc:
            exc.events = events
            raise
    return events


VENUE_SCENARIOS_ALL: dict[str, tuple[f.Fault, str]] = {
    **VENUE_SCENARIOS,
    "redis-data-loss": (limits.redis_data_loss, "redis-server restarted without its data: "
                        "halt (database first), books still match the exchange"),
    "gauntlet": (venue_gauntlet, "every venue fault --injections times, in one mesh"),
}


@dataclass
class ScenarioRun:
    """One scenario run: the faults injected, restarts seen and the books."""

    scenario: str
    run: int
    seed: str
    events: list[f.FaultEvent] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)
    books: BooksReport | None = None
    error: str = ""
    wall_s: float = 0.0
    work_dir: str = ""
    #: Largest exposure / equity over the run's portfolio marks (``None``: no mark).
    worst_exposure: float | None = None
    #: ``risk.max_total_exposure_pct`` of the mesh.
    exposure_cap: float = 0.0

    @property
    def ok(self) -> bool:
        """No error, every fault recovered as it must, and the books balance."""
        return (not self.error and self.books is not None and self.books.ok
                and all(e.ok for e in self.events))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "scenario": self.scenario, "run": self.run, "seed": self.seed, "ok": self.ok,
            "faults": [e.to_dict() for e in self.events], "restarts": self.restarts,
            "books": self.books.to_dict() if self.books else None, "error": self.error,
            "wall_s": round(self.wall_s, 2), "work_dir": self.work_dir,
            "worst_exposure": self.worst_exposure, "exposure_cap": self.exposure_cap,
        }


async def _restarts(mesh: DrillMesh) -> dict[str, int]:
    seen = mesh.pid_log.restarts()
    try:
        agents = (await mesh.api("GET", "/api/agents", timeout=10)).get("agents", [])
    except DrillError:
        agents = []
    for a in agents:
        n = int(a.get("restarts") or 0)
        if n > seen.get(a["agent_id"], 0):
            seen[a["agent_id"]] = n
    return {a: n for a, n in sorted(seen.items()) if n}


def _books(mesh: DrillMesh) -> tuple[BooksReport, float | None]:
    """The books check and the worst exposure / equity of the run's marks."""
    r = redis.Redis.from_url(mesh.redis_url, socket_timeout=30)
    store = Store(make_engine(f"sqlite:///{mesh.var_dir / 'tradingmesh.db'}"))
    try:
        books = (check_venue_books(r, store, mesh.sim, mesh.data_lost_ns)
                 if isinstance(mesh, VenueDrillMesh) else check_books(r, store, mesh.data_lost_ns))
        return books, worst_exposure(store)
    finally:
        store.close()
        r.close()


def worst_exposure(store: Store) -> float | None:
    """The largest gross exposure / equity over the portfolio marks the database holds
    (``None`` when there is none)."""
    with store.engine.connect() as conn:
        got = conn.execute(sa.text(
            "SELECT max(exposure / equity) FROM equity WHERE equity > 0")).scalar()
    return None if got is None else float(got)


def scenarios(venue: str = "paper") -> dict[str, tuple[f.Fault, str]]:
    """The scenarios of a drill on ``venue`` (``paper`` or ``exchange-sim``)."""
    if venue == "exchange-sim":
        return VENUE_SCENARIOS_ALL
    return SCENARIOS


async def run_scenario(name: str, run: int, seed: int, base_dir: Path, *, limit: int,
                       injections: int, venue: str = "paper") -> ScenarioRun:
    """Run scenario ``name`` once on a fresh mesh under ``base_dir/<name>-<run>``, on the
    paper venue or (``venue="exchange-sim"``) through ccxt on the exchange simulator.

    Raises
    ------
    KeyError
        Unknown scenario name.
    """
    fault, _ = scenarios(venue)[name]
    res = ScenarioRun(name, run, f"{seed}:{name}:{run}")
    work = base_dir / f"{name}-{run}"
    res.work_dir = str(work)
    mesh = (VenueDrillMesh(work, limit=limit, seed=seed) if venue == "exchange-sim"
            else DrillMesh(work, limit=limit, busy=name in BUSY_SCENARIOS))
    rng = random.Random(res.seed)  # noqa: S311 - reproducible fault moments, not crypto
    t0 = time.monotonic()
    try:
        await mesh.start()
        res.events = await fault(mesh, rng, injections)
        await mesh.wait_done()
        if isinstance(mesh, VenueDrillMesh):
            await settle(mesh)
            await mesh.wait_done()  # what settling published is consumed too
        res.restarts = await _restarts(mesh)
        await mesh.stop_orchestrator()
        res.books, res.worst_exposure = await asyncio.to_thread(_books, mesh)
        res.exposure_cap = mesh.settings.risk.max_total_exposure_pct
    except (DrillError, OSError, redis.RedisError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
        res.events = res.events or getattr(exc, "events", [])
    finally:
        await mesh.close()
        res.wall_s = time.monotonic() - t0
    return res


@dataclass
class DrillSummary:
    """Per-scenario totals over its runs (the drill table's row)."""

    scenario: str
    runs: int
    passed: int
    faults: int
    restarts: int
    orders: int
    lost: int
    duplicated: int
    recovery_median_s: float | None
    recovery_max_s: float | None
    worst_exposure: float | None = None
    exposure_cap: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def _row(name: str, mine: list[ScenarioRun], events: list[f.FaultEvent]) -> DrillSummary:
    rec = [e.recovery_s for e in events if e.recovery_s is not None]
    return DrillSummary(
        scenario=name, runs=len(mine), passed=sum(r.ok for r in mine), faults=len(events),
        restarts=sum(sum(r.restarts.values()) for r in mine),
        orders=sum(r.books.orders for r in mine if r.books),
        lost=sum(r.books.lost for r in mine if r.books),
        duplicated=sum(r.books.duplicated for r in mine if r.books),
        recovery_median_s=statistics.median(rec) if rec else None,
        recovery_max_s=max(rec) if rec else None,
        worst_exposure=max((r.worst_exposure for r in mine if r.worst_exposure is not None),
                           default=None),
        exposure_cap=max((r.exposure_cap for r in mine), default=0.0),
    )


def summarize(runs: list[ScenarioRun]) -> list[DrillSummary]:
    """One :class:`DrillSummary` per scenario, in the order first run; a gauntlet (several
    faults in one mesh) also gets a row per fault (``gauntlet: <fault>``: its injections
    and recoveries; the books are the whole run's)."""
    out = []
    for name in dict.fromkeys(r.scenario for r in runs):
        mine = [r for r in runs if r.scenario == name]
        events = [e for r in mine for e in r.events]
        out.append(_row(name, mine, events))
        if name == "gauntlet":
            for fault in dict.fromkeys(e.fault for e in events):
                out.append(_row(f"{name}: {fault}", mine,
                                [e for e in events if e.fault == fault]))
    return out


async def run_drill(names: list[str], base_dir: Path, *, runs: int, injections: int,
                    seed: int, limit: int, keep: bool = False, venue: str = "paper",
                    on_result=None) -> list[ScenarioRun]:  # noqa: ANN001
    """Run every scenario ``runs`` times; passing runs' directories are removed unless
    ``keep``.  ``on_result(run)`` is called after each run (progress)."""
    results = []
    for name in names:
        for i in range(runs):
            res = await run_scenario(name, i, seed, base_dir, limit=limit,
                                     injections=injections, venue=venue)
            if res.ok and not keep:
                shutil.rmtree(res.work_dir, ignore_errors=True)
            results.append(res)
            if on_result is not None:
                on_result(res)
    return results
