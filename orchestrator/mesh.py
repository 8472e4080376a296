"""Bring a whole mesh up (Redis, database, agents) and take it down again.

Used by ``tradingmesh up`` (run until Ctrl-C/SIGTERM) and ``tradingmesh run`` (replay
the data to its end, then report).  A ``run`` gets its own directory under
``var/runs/<UTC stamp>`` with a private redis-server (unless ``REDIS_URL`` is set), a
fresh SQLite database, the resolved settings and one log file per agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from backend import channels
from backend.bus import Bus, pipeline_caught_up
from backend.mesh import topology
from backend.messages import new_id
from backend.performance.report import Report, build_report
from backend.persistence import Store, make_engine
from backend.redisctl.acl import ADMIN, CREDENTIALS_ENV, ORCHESTRATOR, MeshAccess
from backend.redisctl.checks import eviction_problem
from backend.redisctl.server import EmbeddedRedis, RedisServer, ensure_redis
from backend.runtime.secretfiles import SecretFileError
from backend.settings import SETTINGS_FILE_ENV, Settings, strip_url_userinfo, write_resolved
from orchestrator.killswitch import sync_halt_latch
from orchestrator.orphans import retire_orphans
from orchestrator.supervisor import Supervisor
from orchestrator.symbol_halts import restore_symbol_halts

log = logging.getLogger("orchestrator")


class MeshError(RuntimeError):
    """The mesh could not start or finish; the message says why."""


@dataclass
class MeshHandle:
    """A running mesh: its settings, supervisor and Redis (if we started it)."""

    settings: Settings
    supervisor: Supervisor
    redis_proc: RedisServer | EmbeddedRedis | None
    run_dir: Path


def new_run_dir(var_dir: Path) -> Path:
    """``var/runs/<YYYYmmddTHHMMSSZ>`` (suffixed if taken)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    d = var_dir / "runs" / stamp
    n = 1
    while d.exists():
        n += 1
        d = var_dir / "runs" / f"{stamp}-{n}"
    d.mkdir(parents=True)
    return d


async def start_mesh(
    settings: Settings, run_dir: Path, *, fresh: bool, reset: bool = False
) -> MeshHandle:
    """Start Redis (if needed) and every agent; return once all report ``running``.

    Parameters
    ----------
    fresh
        A replay run: Redis data and database under ``run_dir``; an existing Redis
        (``REDIS_URL``) must be empty unless ``reset``.
    reset
        FLUSHDB the external Redis first (only with ``fresh``).

    Raises
    ------
    MeshError
        Redis unreachable, not empty, or an agent did not come up (log tail included).
    """
    # REDIS_URL if set, else a private redis-server (data in <run_dir or var_dir>/redis)
    # with one ACL user per role, else the embedded stand-in (which warns).
    url, proc = ensure_redis(run_dir if fresh else settings.var_dir, acl=True)
    try:  # ACL: our private server's credentials; an external one's from
        # TRADINGMESH_REDIS_CREDENTIALS; none for the embedded stand-in (no ACL there)
        access = MeshAccess.resolve(url, getattr(proc, "credentials_path", None),
                                    environ=None if proc is None else {})
    except SecretFileError as exc:
        if proc is not None:
            proc.stop()
        raise MeshError(f"Redis credentials: {exc}") from None
    url = access.url(ORCHESTRATOR)  # the orchestrator's own connections
    db_url = settings.database_url or (
        f"sqlite:///{run_dir / 'tradingmesh.db'}" if fresh
        else f"sqlite:///{settings.var_dir / 'tradingmesh.db'}"
    )
    settings = settings.model_copy(update={"redis_url": url, "database_url": db_url})
    r = Redis.from_url(url)
    try:
        await r.ping()
        if proc is None:  # an external Redis: it must never evict our keys
            check = Redis.from_url(access.url(ADMIN)) if access.acl else r
            try:
                problem = await eviction_problem(check, url.split("@")[-1])
            finally:
                if check is not r:
                    await check.aclose()
            if problem:
                raise MeshError(problem)
        if fresh:
            if reset:
                await r.flushdb()
            elif await r.dbsize():
                raise MeshError(
                    f"Redis at {url.split('@')[-1]} is not empty; a replay run needs an empty "
                    "database (use --reset to flush it, or unset REDIS_URL to get a private one)"
                )
        await r.delete(channels.PARKED_AGENTS_KEY)  # a new orchestrator runs every agent
        await r.set(channels.INSTANCE_KEY, new_id(), nx=True)  # gone later = data lost
        await retire_orphans(r, [a.agent_id for a in topology.agent_specs(settings)],
                             settings.orchestrator.shutdown_grace_s)
        store = Store(make_engine(db_url))  # create the tables once, before agents race to
        # A halt latched before (kill switch, breaker) holds across restarts, even if
        # Redis lost its data: re-latch it before any agent starts.
        halt = await sync_halt_latch(r, store)
        await restore_symbol_halts(r, store)
        store.close()
    except (ConnectionError, OSError, RedisConnectionError) as exc:
        raise MeshError(f"Redis at {url.split('@')[-1]} is not reachable: {exc}") from None
    finally:
        await r.aclose()
    if halt is not None:
        log.critical("trading is HALTED (%s by %s: %s); reset it through the API or "
                     "`tradingmesh reset --reason ...`", halt.kind, halt.by, halt.reason)
    settings_file = write_resolved(settings, run_dir / "settings.json")
    env = dict(os.environ)
    env.pop("TRADINGMESH_API_TOKEN", None)  # agents never need the control plane's token
    env.pop(CREDENTIALS_ENV, None)  # nor every user's password: each gets its own URL
    env[SETTINGS_FILE_ENV] = str(settings_file)
    env["REDIS_URL"] = strip_url_userinfo(url) if access.acl else url
    env["DATABASE_URL"] = db_url  # with its password, which settings.json does not hold
    env.setdefault("PYTHONUNBUFFERED", "1")
    sup = Supervisor(settings, topology.agent_specs(settings), env, run_dir / "logs",
                     agent_env=access.agent_env if access.acl else None)
    sup.start_all()
    handle = MeshHandle(settings, sup, proc, run_dir)
    if not await sup.wait_running(settings.orchestrator.start_timeout_s):
        beats = await sup.health()
        missing = [a for a, hb in beats.items() if hb is None or hb.state.value != "running"]
        tails = "\n".join(_log_tail(run_dir / "logs", a) for a in missing)
        await stop_mesh(handle)
        raise MeshError(f"agents did not reach 'running': {missing}\n{tails}")
    return handle


def _log_tail(log_dir: Path, agent_id: str, lines: int = 15) -> str:
    p = log_dir / f"{agent_id.replace(':', '_')}.log"
    if not p.exists():
        return f"--- {agent_id}: no log"
    text = p.read_text(errors="replace").splitlines()[-lines:]
    return f"--- {agent_id} ({p}):\n" + "\n".join(text)


async def stop_mesh(handle: MeshHandle) -> dict[str, int | None]:
    """Stop every agent (upstream first), then the Redis we started."""
    codes = await handle.supervisor.stop_all()
    if handle.redis_proc is not None:
        handle.redis_proc.stop()
    return codes


async def wait_replay_done(handle: MeshHandle, progress=None) -> None:  # noqa: ANN001
    """Supervise until the replay published its last bar and the order path is idle.

    Raises
    ------
    MeshError
        An agent was given up on (restart limit) before the replay finished.
    """
    sup = handle.supervisor
    r = Redis.from_url(handle.settings.redis_url)
    groups = topology.consumer_groups(handle.settings)
    last_progress = last_sync = last_trim = 0.0
    try:
        while True:
            await sup.check_once()
            if time.monotonic() - last_sync > 2:  # latches in step; Redis data still there
                last_sync = time.monotonic()
                await sup.sync_halts()
            if time.monotonic() - last_trim > 10:  # trimmed below every group's reading
                last_trim = time.monotonic()
                await sup.trim_streams()
            gone = [a for a, m in sup.agents.items() if m.gave_up]
            if gone:
                raise MeshError(f"gave up on {gone} (restart limit); see {handle.run_dir}/logs")
            if await r.exists(channels.REPLAY_DONE_KEY) and await pipeline_caught_up(r, groups):
                return
            if progress is not None and time.monotonic() - last_progress > 2.0:
                last_progress = time.monotonic()
                cursor = int(await r.get(channels.REPLAY_CURSOR_KEY) or 0)
                await progress(cursor)
            await asyncio.sleep(0.1)
    finally:
        await r.aclose()


async def collect_report(handle: MeshHandle, wall_time_s: float) -> Report:
    """Build the run's report from the database and the bus counters."""
    s = handle.settings
    store = Store(make_engine(s.db_url()))
    r = Redis.from_url(s.redis_url)
    try:
        counts = await Bus(r, "orchestrator").message_counts()
        bars = int(await r.get(channels.REPLAY_CURSOR_KEY) or 0)
    finally:
        await r.aclose()
    return build_report(
        store.fills(),
        store.equity_curve(),
        s.paper.initial_cash,
        extra={
            "messages_per_channel": counts,
            "orders_by_status": store.orders_by_status(),
            "wall_time_s": wall_time_s,
            "bars": bars,
        },
    )


def install_stop_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
