"""One measured run of the real mesh for ``benchmarks/mesh.py``.

Brings up a private redis-server and the order path's agent processes (market_data,
one strategy, compliance, risk, execution; the optimizer is not started: it is off the
order path), the way :func:`orchestrator.mesh.start_mesh` does (same resolved-settings
file, same :class:`~orchestrator.supervisor.Supervisor`), except that market_data is
started last, once every downstream agent reports ``running``, so no tick waits for an
agent that is still importing.  market_data replays ``ETH/BTC`` 5-minute bars at
``replay_speed = rate * 300`` (``rate`` bars per second).  While it runs, every 0.2 s
the harness samples each agent's CPU time and RSS (psutil) and the backlog of every
consumer group on the order path (``XINFO GROUPS``: lag + pending).

The two instants measured need no probe: both are ns wall-clock stamps the mesh
already puts on the wire.  ``BarClosed.ts`` is stamped by market_data when it builds
the bar, just before the ``MULTI/EXEC`` that XADDs and PUBLISHes it; ``OrderAccepted.ts``
is the ``now_ns()`` execution passes to ``venue.submit`` (``agents/execution.py``), i.e.
the instant it hands the order to the paper venue.  The intermediate messages'
``ts`` (signal, compliance decision, order) split the time per stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import redis
from redis.asyncio import Redis

from backend import channels
from backend.bus import DATA_FIELD, pipeline_caught_up
from backend.mesh import topology
from backend.messages import (
    BarClosed,
    ComplianceDecided,
    OrderAccepted,
    OrderRejected,
    PortfolioMarked,
    RiskDecided,
    SignalGenerated,
    SubmitOrder,
    decode,
)
from backend.persistence import Store, make_engine
from backend.redisctl.server import RedisServer
from backend.settings import (
    ROOT,
    SETTINGS_FILE_ENV,
    ComplianceConfig,
    PaperConfig,
    RiskConfig,
    Settings,
    StrategyConfig,
    write_resolved,
)
from orchestrator.supervisor import Supervisor

SYMBOL = "ETH/BTC"
BAR_SECONDS = 300  # 5-minute bars
SAMPLE_S = 0.2
#: Tables the agents write per tick (rows counted after a run).
DB_TABLES = ("signals", "decisions", "audit", "orders", "fills", "positions", "equity")
#: Share of the first ticks left out of the figures (cold caches, first database writes).
WARMUP_FRAC = 0.1
#: A backlog growing slower than this share of the offered rate counts as flat.
FLAT_FRAC = 0.05
#: Settings that let every tick's signal become an order (docs/benchmarks.md).
RULES = {
    "compliance": ComplianceConfig(max_trades_per_day=10**9, max_notional_per_day=1e18,
                                   duplicate_window_s=0.0),
    # max_signal_age_s 0: a backlog is what the throughput runs measure, not a reason to
    # refuse; allow_short: every_tick's SELLs reverse a BUY still in flight
    "risk": RiskConfig(daily_drawdown_limit=1.0, max_position_pct=0.001, max_signal_age_s=0.0,
                       allow_short=True),
    "paper": PaperConfig(fee_rate=0.0, slippage_bps=0.0),
}


def bench_settings(work: Path, redis_url: str, rate: float, ticks: int) -> Settings:
    """The mesh's settings for one run: ``ticks`` bars of ETH/BTC at ``rate`` bars/s,
    the ``every_tick`` strategy and rules no signal can fail (:data:`RULES`)."""
    return Settings(
        redis_url=redis_url, database_url=f"sqlite:///{work / 'tradingmesh.db'}",
        var_dir=work, data_dir=ROOT / "data" / "sample", symbols=[SYMBOL],
        replay_speed=float(rate * BAR_SECONDS), replay_limit=ticks,
        default_strategy=StrategyConfig(name="every_tick"), **RULES,
    )


@dataclass
class Sample:
    """One observation: wall clock (ns), CPU seconds and RSS bytes per process, backlog."""

    t_ns: int
    cpu_s: dict[str, float]
    rss: dict[str, int]
    backlog: int


@dataclass
class RunData:
    """What one run recorded (raw; :func:`analyse` turns it into figures)."""

    rate: float
    ticks: int
    bars: dict[int, int] = field(default_factory=dict)  # seq -> BarClosed.ts
    signals: dict[int, int] = field(default_factory=dict)  # bar seq -> ts
    approvals: dict[int, int] = field(default_factory=dict)  # bar seq -> ts
    orders: dict[int, tuple[int, str]] = field(default_factory=dict)  # seq -> (ts, coid)
    accepted: dict[str, int] = field(default_factory=dict)  # coid -> OrderAccepted.ts
    marked: dict[int, int] = field(default_factory=dict)  # bar seq -> mark XADD (ms)
    db_rows: dict[str, int] = field(default_factory=dict)  # table -> rows after the run
    rejected: dict[str, int] = field(default_factory=dict)  # stage:rule -> count
    refused: dict[int, int] = field(default_factory=dict)  # bar seq -> risk refusal ts
    samples: list[Sample] = field(default_factory=list)
    restarts: int = 0


def _spawn_env(settings_file: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRADINGMESH_") and k not in ("REDIS_URL", "DATABASE_URL")}
    env.update({SETTINGS_FILE_ENV: str(settings_file), "REDIS_URL": url,
                "PYTHONUNBUFFERED": "1"})
    return env


async def _bring_up(settings: Settings, work: Path,
                    before_feed: Callable[[Supervisor], Awaitable[None]]) -> Supervisor:
    """Spawn the order path's agents, await ``before_feed``, then start market_data;
    return once all are running."""
    Store(make_engine(settings.db_url())).close()  # tables exist before agents race
    env = _spawn_env(write_resolved(settings, work / "settings.json"), settings.redis_url)
    specs = [s for s in topology.agent_specs(settings) if s.role != "optimizer"]
    sup = Supervisor(settings, specs, env, work / "logs")
    sup.get("market_data").stopped_by_operator = True  # held back: started below
    for m in sup.agents.values():
        if not m.stopped_by_operator:
            sup.spawn(m)
    timeout = settings.orchestrator.start_timeout_s
    if not await sup.wait_running(timeout):
        await sup.stop_all()
        raise RuntimeError(f"agents did not reach 'running' (logs: {work / 'logs'})")
    await before_feed(sup)
    await sup.start_agent("market_data")
    if not await sup.wait_running(timeout):
        await sup.stop_all()
        raise RuntimeError(f"market_data did not reach 'running' (logs: {work / 'logs'})")
    return sup


async def _sample(sup: Supervisor, r: Redis, server_pid: int,
                  groups: dict[str, list[str]]) -> Sample:
    pids = {a: m.pid for a, m in sup.agents.items() if m.pid is not None}
    pids["redis-server"] = server_pid
    cpu, rss = {}, {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            with p.oneshot():
                ct, mem = p.cpu_times(), p.memory_info()
            cpu[name], rss[name] = ct.user + ct.system, mem.rss
    pipe = r.pipeline(transaction=True)
    for stream in groups:
        pipe.xinfo_groups(stream)
    backlog = 0
    for stream, info in zip(groups, await pipe.execute(), strict=True):
        for g in info:
            if g["name"].decode() in groups[stream]:
                backlog += int(g["pending"]) + int(g.get("lag") or 0)
    return Sample(time.time_ns(), cpu, rss, backlog)


def _read_stream(c: redis.Redis, stream: str) -> list:
    """Every message of ``stream`` as ``(entry time ms, message)``."""
    out, start = [], "-"
    while True:
        entries = c.xrange(stream, start, "+", count=10_000)
        out += [(int(eid.split(b"-")[0]), decode(fields[DATA_FIELD]))
                for eid, fields in entries]
        if len(entries) < 10_000:
            return out
        start = "(" + entries[-1][0].decode()


def _collect(url: str, data: RunData) -> None:
    """Read the order path's streams back and index the stamps by bar seq / order id."""
    with redis.Redis.from_url(url) as c:
        for _ms, m in _read_stream(c, channels.MARKET_DATA):
            if isinstance(m, BarClosed):
                data.bars[m.seq] = m.ts
        for _ms, m in _read_stream(c, channels.SIGNALS):
            if isinstance(m, SignalGenerated):
                data.signals[m.bar_seq] = m.ts
        for _ms, m in _read_stream(c, channels.SIGNALS_APPROVED):
            if isinstance(m, ComplianceDecided):
                data.approvals[m.signal.bar_seq] = m.ts
        for _ms, m in _read_stream(c, channels.SIGNALS_REJECTED):
            if isinstance(m, ComplianceDecided | RiskDecided):
                key = f"{'risk' if isinstance(m, RiskDecided) else 'compliance'}:{m.rule}"
                data.rejected[key] = data.rejected.get(key, 0) + 1
                if isinstance(m, RiskDecided):
                    data.refused[m.signal.bar_seq] = m.ts
        for _ms, m in _read_stream(c, channels.ORDERS):
            if isinstance(m, SubmitOrder):
                data.orders[m.bar_seq] = (m.ts, m.client_order_id)
        for ms, m in _read_stream(c, channels.TRADING_EVENTS):
            if isinstance(m, OrderAccepted):
                data.accepted[m.client_order_id] = m.ts
            elif isinstance(m, PortfolioMarked):
                data.marked[m.bar_seq] = ms
            elif isinstance(m, OrderRejected):
                key = "venue:" + re.split(r"[\d(]", m.reason, maxsplit=1)[0].strip()
                data.rejected[key] = data.rejected.get(key, 0) + 1


async def _run(work: Path, rate: float, ticks: int, timeout_s: float) -> RunData:
    data = RunData(rate, ticks)
    server = RedisServer(work / "redis", die_with_parent=True).start()
    try:
        settings = bench_settings(work, server.url, rate, ticks)
        groups = topology.consumer_groups(settings)
        r = Redis.from_url(server.url)

        async def sample(sup: Supervisor) -> None:
            data.samples.append(await _sample(sup, r, server.pid or 0, groups))

        try:
            sup = await _bring_up(settings, work, sample)
        except BaseException:
            await r.aclose()
            raise
        try:
            await sample(sup)
            deadline = time.monotonic() + timeout_s
            while True:
                await sup.check_once()
                await sample(sup)
                if await r.exists(channels.REPLAY_DONE_KEY) and \
                        await pipeline_caught_up(r, groups):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the run did not finish within {timeout_s:.0f}s "
                                       f"(logs: {work / 'logs'})")
                await asyncio.sleep(SAMPLE_S)
            data.restarts = sum(m.total_restarts for m in sup.agents.values())
        finally:
            await r.aclose()
            for m in sup.agents.values():  # all at once (the run is over), then the
                sup.kill(m, signal.SIGTERM)  # supervisor's ordered stop waits for them
            await sup.stop_all()
        _collect(server.url, data)
        with contextlib.closing(sqlite3.connect(work / "tradingmesh.db")) as db:
            for table in DB_TABLES:
                data.db_rows[table] = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        server.stop()
    return data


def run_mesh(work: Path, rate: float, ticks: int, timeout_s: float = 300.0) -> RunData:
    """Run the mesh once: ``ticks`` bars at ``rate`` bars/s (work files under ``work``)."""
    work.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_run(work, rate, ticks, timeout_s))


def _pct(x: np.ndarray) -> dict[str, float]:
    """p50/p99/max of latencies given in ns, as ms."""
    if not len(x):
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    return {"p50_ms": float(np.percentile(x, 50)) / 1e6,
            "p99_ms": float(np.percentile(x, 99)) / 1e6, "max_ms": float(x.max()) / 1e6}


def _window_cpu(samples: list[Sample], t0: int, t1: int) -> dict[str, float]:
    """CPU % (100 = one core) per process between the samples bracketing ``[t0, t1]``
    (for a process first seen after ``t0``, market_data: from its first sample)."""
    out = {}
    for k in samples[-1].cpu_s:
        have = [s for s in samples if k in s.cpu_s]
        a = ([s for s in have if s.t_ns <= t0] or have[:1])[-1]
        b = ([s for s in have if s.t_ns >= t1] or have[-1:])[0]
        if b.t_ns > a.t_ns:
            out[k] = 100.0 * (b.cpu_s[k] - a.cpu_s[k]) / ((b.t_ns - a.t_ns) / 1e9)
    return out


def _growth(t: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` over ``t`` (ns) in units per second (0 if < 3 points)."""
    if len(t) < 3 or np.ptp(t) == 0:
        return 0.0
    return float(np.polyfit((t - t[0]) / 1e9, y.astype(np.float64), 1)[0])


def analyse(d: RunData) -> dict:
    """Figures of one run (latencies in ms, rates per second, CPU %, RSS MiB).

    The first :data:`WARMUP_FRAC` of the ticks are left out.  ``backlog_growth_per_s``
    is the slope of ticks published but not yet handed to the venue over the
    publishing window (from the stamps); ``redis_backlog_growth_per_s`` the slope of
    the consumer groups' lag + pending sampled live.  Sustained: both below
    :data:`FLAT_FRAC` of the offered rate and every tick made an order or was refused by
    risk (a tick risk refused, e.g. a repeat entry while the last order is in flight, is
    done when it is refused; it has no latency).
    """
    seqs = sorted(d.bars)
    skip = int(len(seqs) * WARMUP_FRAC)
    measured = seqs[skip:]
    done = [s for s in measured if s in d.orders and d.orders[s][1] in d.accepted]
    lat = np.array([d.accepted[d.orders[s][1]] - d.bars[s] for s in done], dtype=np.int64)
    stages = {}
    chain = [("strategy", d.bars, d.signals), ("compliance", d.signals, d.approvals),
             ("risk", d.approvals, {s: v[0] for s, v in d.orders.items()}),
             ("execution", {s: v[0] for s, v in d.orders.items()},
              {s: d.accepted[v[1]] for s, v in d.orders.items() if v[1] in d.accepted})]
    for name, a, b in chain:
        x = np.array([b[s] - a[s] for s in done if s in a and s in b], dtype=np.int64)
        stages[name] = _pct(x)["p50_ms"]
    pub = np.array([d.bars[s] for s in measured], dtype=np.int64)
    refused = [s for s in measured if s in d.refused and s not in done]
    acc = np.sort(np.array([d.accepted[d.orders[s][1]] for s in done], dtype=np.int64))
    handled = np.sort(np.concatenate([acc, np.array([d.refused[s] for s in refused],
                                                    dtype=np.int64)]))
    span = (pub[-1] - pub[0]) / 1e9 if len(pub) > 1 else 0.0
    offered = (len(pub) - 1) / span if span > 0 else 0.0
    acc_span = (acc[-1] - acc[0]) / 1e9 if len(acc) > 1 else 0.0
    processed = (len(acc) - 1) / acc_span if acc_span > 0 else 0.0
    grid = np.linspace(pub[0], pub[-1], 50) if len(pub) > 1 else pub
    in_flight = np.searchsorted(pub, grid, "right") - np.searchsorted(handled, grid, "right")
    window = [s for s in d.samples if len(pub) and pub[0] <= s.t_ns <= pub[-1]]
    growth = _growth(grid, in_flight)
    redis_growth = _growth(np.array([s.t_ns for s in window], dtype=np.int64),
                           np.array([s.backlog for s in window]))
    mark_lag = np.array([d.marked[s] * 1_000_000 - d.bars[s] for s in measured
                         if s in d.marked], dtype=np.int64)
    t_end = int(acc[-1]) if len(acc) else int(pub[-1])
    cpu = _window_cpu(d.samples, int(pub[0]), t_end) if len(pub) else {}
    rss = {k: max(s.rss.get(k, 0) for s in d.samples) / 2**20 for k in d.samples[-1].rss}
    limit = FLAT_FRAC * offered
    return {
        "target_rate": d.rate, "ticks": len(seqs), "measured_ticks": len(measured),
        "signals": len(d.signals), "orders": len(d.orders),
        "orders_at_venue": sum(1 for v in d.orders.values() if v[1] in d.accepted),
        "rejected": d.rejected, "agent_restarts": d.restarts,
        "latency": _pct(lat), "stage_p50_ms": stages,
        "mark_lag_p50_ms": _pct(mark_lag)["p50_ms"],
        "db_rows_per_tick": {k: v / max(1, len(seqs)) for k, v in d.db_rows.items()},
        "offered_ticks_per_s": offered, "orders_per_s": processed,
        "backlog_growth_per_s": growth, "redis_backlog_growth_per_s": redis_growth,
        "redis_backlog_max": max((s.backlog for s in window), default=0),
        "refused_by_risk": len(refused),
        "sustained": bool(len(done) + len(refused) == len(measured) and growth < limit
                          and redis_growth < limit),
        "cpu_pct": cpu, "rss_peak_mib": rss,
    }
