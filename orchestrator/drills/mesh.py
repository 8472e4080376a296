"""A whole mesh run for a fault drill: its own Redis, the orchestrator as a child process.

The drill plays the **launch supervisor**: it owns the ``redis-server`` (AOF on, so it can
be restarted mid-run) and runs ``tradingmesh up`` as a subprocess (so the orchestrator
itself can be SIGKILLed and started again).  It watches the mesh only from outside:
heartbeat keys, the replay cursor, consumer groups and the REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis.asyncio import Redis

from backend import channels
from backend.bus import pipeline_caught_up, read_heartbeats
from backend.mesh import topology
from backend.messages import AgentHeartbeat, AgentState
from backend.redisctl.acl import CREDENTIALS_ENV, DASHBOARD, url_for_role
from backend.redisctl.server import RedisServer
from backend.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
_DROP_ENV = ("REDIS_URL", "TRADINGMESH_REDIS_URL", "TRADINGMESH_REDIS_CREDENTIALS", "DATABASE_URL",
             "TRADINGMESH_DATABASE_URL", "TRADINGMESH_SETTINGS_FILE", "TRADINGMESH_FAILPOINTS",
             "TRADINGMESH_API_TOKEN")


#: Settings of a *busy* drill mesh (issue 15's scenarios): a signal on every bar (BUY and
#: SELL in turn, so entries and, with a 2% bracket, closes by signal), limits that let
#: them through, and a total exposure cap that binds (0.6 of equity for 4 symbols of 0.25
#: each) so the drill can show what the marks reach; the breaker at 50% (trading on every
#: bar at a loss to fees must not trip it before the drill does).
BUSY: dict[str, object] = {
    "default_strategy": {"name": "every_tick", "params": {"bracket_frac": 0.02}},
    "compliance": {"max_trades_per_day": 100_000, "max_notional_per_day": 1_000_000.0,
                   "duplicate_window_s": 0.0},
    "risk": {"min_confidence": 0.0, "daily_drawdown_limit": 0.5,
             "max_total_exposure_pct": 0.6},
}


class DrillError(RuntimeError):
    """The mesh under drill did not come up or did not finish in time.

    ``events``: the faults injected before it happened (set by a multi-fault run).
    """

    events: list = []  # noqa: RUF012 - replaced per instance


@dataclass
class PidLog:
    """Every pid seen for each agent (a new pid = one restart)."""

    pids: dict[str, list[int]] = field(default_factory=dict)

    def see(self, agent_id: str, pid: int) -> None:
        """Record ``pid`` for ``agent_id`` (once)."""
        seen = self.pids.setdefault(agent_id, [])
        if pid not in seen:
            seen.append(pid)

    def restarts(self) -> dict[str, int]:
        """Restarts observed per agent (distinct pids - 1)."""
        return {a: len(p) - 1 for a, p in self.pids.items() if len(p) > 1}


class DrillMesh:
    """One mesh under drill: Redis, orchestrator subprocess, and ways to look at them.

    Parameters
    ----------
    work_dir
        Everything of this run: ``redis/`` (AOF, log), ``var/`` (database, agent logs),
        ``failpoints/``, ``orchestrator.log``.
    limit
        Bars per symbol to replay (``replay_limit``).
    speed
        Replay speed (``"max"``: as fast as the mesh takes it, with back-pressure).
    """

    def __init__(self, work_dir: Path, *, limit: int, speed: str = "max",
                 busy: bool = False) -> None:
        self.busy = busy
        self.work_dir = work_dir
        self.var_dir = work_dir / "var"
        self.failpoint_dir = work_dir / "failpoints"
        self.limit = limit
        self.speed = speed
        self.token = secrets.token_urlsafe(24)
        # loopback, protected mode, one ACL user per role (as scripts/launch.sh starts it)
        self.server = RedisServer.with_acl(work_dir / "redis", appendonly=True,
                                           die_with_parent=True)
        self.orch: subprocess.Popen[bytes] | None = None
        self.orchestrator_starts = 0
        self.pid_log = PidLog()
        #: when Redis came back without its data after the drill wiped it (ns UTC), if it did
        self.data_lost_ns: int | None = None
        self.settings = Settings(var_dir=self.var_dir, replay_limit=limit,
                                 **(BUSY if busy else {}))  # type: ignore[arg-type]
        self.agent_ids = [s.agent_id for s in topology.agent_specs(self.settings)]
        self._redis: Redis | None = None
        self._watcher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ processes
    @property
    def redis_url(self) -> str:
        """URL of the mesh's Redis as its ``admin`` user (the drill's own access)."""
        return self.server.url

    @property
    def subscriber_url(self) -> str:
        """URL a read-only live subscriber (``tradingmesh tail``) connects with: the
        ``dashboard`` ACL user's."""
        return url_for_role(DASHBOARD, self.server.public_url, self.server.credentials_path)

    @property
    def redis(self) -> Redis:
        """The drill's own async client (reconnects by itself after a Redis restart)."""
        assert self._redis is not None, "start() first"
        return self._redis

    @property
    def total_bars(self) -> int:
        """Bars the replay publishes in all (every symbol)."""
        return self.limit * len(self.settings.symbols)

    def env(self) -> dict[str, str]:
        """Environment of the orchestrator process."""
        env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
        env.update({
            "REDIS_URL": self.server.public_url,  # no password: each process gets its role's
            CREDENTIALS_ENV: str(self.server.credentials_path),
            "TRADINGMESH_VAR_DIR": str(self.var_dir),
            "TRADINGMESH_REPLAY_LIMIT": str(self.limit),
            "TRADINGMESH_API_TOKEN": self.token,
            "TRADINGMESH_FAILPOINT_DIR": str(self.failpoint_dir),
            "PYTHONUNBUFFERED": "1",
        })
        if self.busy:
            env.update({f"TRADINGMESH_{k.upper()}": json.dumps(v) for k, v in BUSY.items()})
        return env

    async def start(self, timeout: float = 120.0) -> None:
        """Start Redis and the orchestrator; return when every agent is running."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.failpoint_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.server.start)
        self._redis = Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=2)
        self._watcher = asyncio.create_task(self._watch_pids())
        self.start_orchestrator()
        await self.wait_all_running(timeout)

    def start_orchestrator(self) -> None:
        """Run ``tradingmesh up`` (no dashboard, API on a free port) as a child process."""
        (self.var_dir / "api_url").unlink(missing_ok=True)
        log = open(self.work_dir / "orchestrator.log", "ab")  # noqa: SIM115 - handed to the child
        cmd = [sys.executable, "-m", "orchestrator.cli", "up", "--speed", self.speed,
               "--no-dashboard", "--api-port", "0"]
        self.orch = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            cmd, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.orchestrator_starts += 1

    def kill_orchestrator(self) -> int:
        """SIGKILL the orchestrator (its agents get SIGTERM from the kernel); its pid."""
        assert self.orch is not None
        pid = self.orch.pid
        self.orch.kill()
        self.orch.wait(30)
        return pid

    async def stop_orchestrator(self, timeout: float = 90.0) -> int | None:
        """SIGTERM the orchestrator (it stops every agent) and wait; its exit code."""
        if self.orch is None or self.orch.poll() is not None:
            return None if self.orch is None else self.orch.returncode
        self.orch.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.orch.poll() is None:
            if time.monotonic() > deadline:
                self.orch.kill()
                return await asyncio.to_thread(self.orch.wait, 10)
            await asyncio.sleep(0.05)
        return self.orch.returncode

    async def close(self) -> None:
        """Stop everything still running (orchestrator, watcher, Redis)."""
        with contextlib.suppress(Exception):
            await self.stop_orchestrator(30)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(BaseException):
                await self._watcher
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
        await asyncio.to_thread(self.server.stop)

    # ------------------------------------------------------------------ looking
    async def beats(self) -> dict[str, AgentHeartbeat | None]:
        """Each agent's current heartbeat (None if absent, or if Redis is unreachable)."""
        try:
            return await read_heartbeats(self.redis, self.agent_ids)
        except Exception:  # noqa: BLE001 - Redis restarting: nothing known
            return dict.fromkeys(self.agent_ids)

    async def _watch_pids(self) -> None:
        while True:
            for a, hb in (await self.beats()).items():
                if hb is not None and hb.state in (AgentState.RUNNING, AgentState.DEGRADED):
                    self.pid_log.see(a, hb.pid)
            await asyncio.sleep(0.05)

    async def pid(self, agent_id: str, timeout: float = 30.0) -> int:
        """The pid of ``agent_id``'s running process (waits for a heartbeat)."""
        hb = await self.until(lambda b: b[agent_id] is not None
                              and b[agent_id].state is AgentState.RUNNING, timeout,
                              f"{agent_id} running")
        return hb[agent_id].pid  # type: ignore[union-attr]

    async def until(self, pred, timeout: float, what: str):  # noqa: ANN001, ANN201
        """Poll heartbeats until ``pred(beats)`` holds; return the beats.

        Raises
        ------
        DrillError
            Not within ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        while True:
            b = await self.beats()
            if pred(b):
                return b
            if time.monotonic() > deadline:
                states = {a: (h.state.value, h.pid) if h else None for a, h in b.items()}
                raise DrillError(f"timed out after {timeout:.0f}s waiting for {what}: {states}")
            await asyncio.sleep(0.02)

    async def wait_all_running(self, timeout: float, not_pids: set[int] = frozenset()) -> None:
        """Every agent heartbeats ``running`` (with a pid not in ``not_pids``)."""
        await self.until(lambda b: all(
            h is not None and h.state is AgentState.RUNNING and h.pid not in not_pids
            for h in b.values()), timeout, "every agent running")

    async def wait_replaced(self, agent_id: str, old_pid: int, timeout: float) -> float:
        """Wait until ``agent_id`` runs again in a new process; seconds it took."""
        t0 = time.monotonic()
        await self.until(lambda b: b[agent_id] is not None and b[agent_id].pid != old_pid
                         and b[agent_id].state is AgentState.RUNNING, timeout,
                         f"{agent_id} replaced (old pid {old_pid})")
        return time.monotonic() - t0

    async def cursor(self) -> int:
        """Bars the replay has published so far (0 while Redis is unreachable)."""
        try:
            return int(await self.redis.get(channels.REPLAY_CURSOR_KEY) or 0)
        except Exception:  # noqa: BLE001
            return 0

    async def wait_cursor(self, bars: int, timeout: float = 300.0) -> int:
        """Wait until the replay has published ``bars`` bars; return the cursor."""
        deadline = time.monotonic() + timeout
        while (c := await self.cursor()) < bars:
            if time.monotonic() > deadline:
                raise DrillError(f"replay stuck at bar {c} (waiting for {bars})")
            await asyncio.sleep(0.02)
        return c

    async def wait_done(self, timeout: float = 600.0) -> None:
        """Wait until the replay published its last bar and every consumer caught up."""
        groups = topology.consumer_groups(self.settings)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):
                if await self.redis.exists(channels.REPLAY_DONE_KEY) and \
                        await pipeline_caught_up(self.redis, groups):
                    return
            if time.monotonic() > deadline:
                raise DrillError(f"replay not finished within {timeout:.0f}s "
                                 f"(cursor {await self.cursor()} of {self.total_bars})")
            if self.orch is not None and self.orch.poll() is not None:
                raise DrillError(f"the orchestrator exited with {self.orch.returncode}; "
                                 f"see {self.work_dir / 'orchestrator.log'}")
            await asyncio.sleep(0.1)

    async def redis_time_ms(self) -> int:
        """The Redis server's clock in ms (the time base of stream entry ids)."""
        sec, usec = await self.redis.time()
        return int(sec) * 1000 + int(usec) // 1000

    # ------------------------------------------------------------------ REST API
    async def api(self, method: str, path: str, timeout: float = 60.0) -> dict:
        """Call the orchestrator's REST API with its token; the JSON body.

        Raises
        ------
        DrillError
            The API did not answer 2xx within ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            url_file = self.var_dir / "api_url"
            if url_file.exists():
                base = url_file.read_text().strip()
                try:
                    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                        resp = await client.request(
                            method, path, headers={"Authorization": f"Bearer {self.token}"})
                    if resp.is_success:
                        return resp.json()
                    last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.1)
        raise DrillError(f"{method} {path} failed: {last or 'no API url yet'}")
