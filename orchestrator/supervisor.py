"""The supervisor: spawns every agent as its own OS process and keeps it alive.

* An agent is **dead** when its process exits, **hung** when its heartbeat key
  (``agent:health:<id>``, TTL ``heartbeat_ttl_s``) expired or never appeared within
  ``start_timeout_s``.  A hung agent is killed (SIGKILL: a stopped process cannot do
  harm when it wakes) and, like a dead one, restarted.
* Restarts use exponential backoff (``restart_backoff_base_s * 2**k``, capped).  After
  ``max_restarts`` restarts within ``restart_window_s`` the supervisor gives up on the
  agent; giving up on the execution agent latches HALTED (``mesh:halt``).
* :meth:`Supervisor.stop_all` stops upstream first (market data, strategies, then
  compliance, risk, execution) with SIGTERM, then SIGKILLs what is left after the
  grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from backend import channels
from backend.bus import read_heartbeats
from backend.mesh.topology import AgentSpec
from backend.messages import AgentHeartbeat, AgentState
from backend.runtime.process import die_with_parent_preexec
from backend.settings import Settings
from orchestrator.housekeeping import MeshHousekeeping

log = logging.getLogger("orchestrator")


@dataclass
class Managed:
    """Supervision record of one agent."""

    spec: AgentSpec
    proc: subprocess.Popen[bytes] | None = None
    started_mono: float = 0.0
    restarts: deque[float] = field(default_factory=deque)
    total_restarts: int = 0
    next_start_mono: float | None = None
    gave_up: bool = False
    stopped_by_operator: bool = False
    last_exit: int | None = None
    last_failure: str = ""
    seen_heartbeat: bool = False
    busy: bool = False  # an operator's stop/restart is in progress: hands off

    @property
    def alive(self) -> bool:
        """The process exists and has not exited."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """OS pid of the running process, if any."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None


class Supervisor(MeshHousekeeping):
    """Spawn, watch, restart and stop the agents of one mesh.

    Its housekeeping (halt latch, stream trimming, Redis data loss, halt sync) is
    :class:`~orchestrator.housekeeping.MeshHousekeeping`.

    Parameters
    ----------
    settings
        Resolved settings (restart policy under ``settings.orchestrator``).
    specs
        The agents to run (:func:`backend.mesh.topology.agent_specs`).
    env
        Environment for the agent processes (must hold ``TRADINGMESH_SETTINGS_FILE``).
    log_dir
        One ``<agent id>.log`` per agent is appended there.
    redis
        Client for heartbeats and the halt latch (default: one for ``settings.redis_url``).
    external
        The agents are run by someone else (docker compose): only watch their heartbeats;
        never spawn, stop or restart a process.
    agent_env
        Per-agent environment overrides on top of ``env`` (:meth:`env_for`), e.g. each
        agent's own ``REDIS_URL`` (:meth:`backend.redisctl.acl.MeshAccess.agent_env`).
    """

    def __init__(
        self, settings: Settings, specs: list[AgentSpec], env: dict[str, str], log_dir: Path,
        redis: Redis | None = None, external: bool = False,
        agent_env: Callable[[AgentSpec], Mapping[str, str]] | None = None,
    ) -> None:
        super().__init__(settings, redis if redis is not None else Redis.from_url(
            settings.redis_url, socket_timeout=10))
        self.external = external
        self.agent_env = agent_env
        self.cfg = settings.orchestrator
        self.env = env
        self.log_dir = log_dir
        self.agents: dict[str, Managed] = {s.agent_id: Managed(s) for s in specs}
        self._stopping = False
        self._preexec = die_with_parent_preexec() if sys.platform.startswith("linux") else None
        self.failsafe_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ processes
    def spawn(self, m: Managed) -> None:
        """Start the agent's process (its output appended to its log file).

        Raises
        ------
        RuntimeError
            The agents are managed externally.
        """
        if self.external:
            raise RuntimeError("agents are managed externally; the supervisor only watches")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_dir / f"{m.spec.agent_id.replace(':', '_')}.log", "ab")  # noqa: SIM115
        cmd = [sys.executable, "-m", "agents.run", *m.spec.argv()]
        m.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            cmd, env=self.env_for(m.spec), stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=self._preexec,  # dies with the orchestrator
        )
        logf.close()
        m.started_mono = time.monotonic()
        m.next_start_mono = None
        m.seen_heartbeat = False
        log.info("spawned %s (pid %d)", m.spec.agent_id, m.proc.pid)

    def env_for(self, spec: AgentSpec) -> dict[str, str]:
        """Environment of ``spec``'s process (and of the execution failsafe): ``env`` with
        the ``agent_env(spec)`` overrides (e.g. ``REDIS_URL`` as the agent's ACL user)."""
        return self.env if self.agent_env is None else {**self.env, **self.agent_env(spec)}

    def start_all(self) -> None:
        """Spawn every agent."""
        for m in self.agents.values():
            self.spawn(m)

    def kill(self, m: Managed, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the agent's process (no error if already gone)."""
        if m.proc is not None and m.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(m.proc.pid, sig)

    # ------------------------------------------------------------------ watching
    async def health(self) -> dict[str, AgentHeartbeat | None]:
        """Last heartbeat of every agent (None when the key expired or never existed)."""
        beats = await self._heartbeats()
        return dict.fromkeys(self.agents) if beats is None else beats

    async def _heartbeats(self) -> dict[str, AgentHeartbeat | None] | None:
        """Like :meth:`health`, but None when Redis cannot be read (nothing is known)."""
        try:
            return await read_heartbeats(self.redis, list(self.agents))
        except Exception:  # noqa: BLE001 - redis down: no heartbeat can be judged
            return None

    async def check_once(self) -> None:
        """One supervision pass: detect dead/hung agents, restart when due."""
        now = time.monotonic()
        # Redis unreachable: heartbeats cannot be judged (a Redis restart must not look
        # like every agent hanging), so only dead processes are handled meanwhile.
        read = await self._heartbeats()
        beats: dict[str, AgentHeartbeat | None] = read if read is not None else {}
        for agent_id, m in self.agents.items():
            if m.gave_up or m.stopped_by_operator or m.busy:
                continue
            if m.next_start_mono is not None:
                if now >= m.next_start_mono:
                    self.spawn(m)
                continue
            hb = beats.get(agent_id)
            alive = m.proc is not None and m.proc.poll() is None
            if hb is not None and hb.pid == (m.proc.pid if m.proc else -1):
                m.seen_heartbeat = True
            if not alive:
                m.last_exit = m.proc.returncode if m.proc is not None else None
                await self._failed(m, f"process exited with code {m.last_exit}")
            elif read is None:
                continue
            elif (
                hb is None
                and not m.seen_heartbeat
                and now - m.started_mono > self.cfg.start_timeout_s
            ):
                self.kill(m)
                await self._failed(m, f"no heartbeat within {self.cfg.start_timeout_s}s of start")
            elif hb is None and m.seen_heartbeat:
                self.kill(m)
                await self._failed(m, f"heartbeat expired (> {self.cfg.heartbeat_ttl_s}s): hung")

    async def _failed(self, m: Managed, why: str) -> None:
        if self._stopping:
            return
        m.last_failure = why
        now = time.monotonic()
        while m.restarts and now - m.restarts[0] > self.cfg.restart_window_s:
            m.restarts.popleft()
        if len(m.restarts) >= self.cfg.max_restarts:
            m.gave_up = True
            log.error(
                "%s: %s; %d restarts in %.0fs: giving up",
                m.spec.agent_id, why, len(m.restarts), self.cfg.restart_window_s,
            )
            if m.spec.role == "execution":
                reason = f"execution agent gave up after {len(m.restarts)} restarts: {why}"
                await self.latch_halt(reason)
                self.failsafe_task = asyncio.create_task(self._failsafe_cancel(m, reason))
            return
        delay = min(
            self.cfg.restart_backoff_base_s * 2 ** len(m.restarts), self.cfg.restart_backoff_max_s
        )
        m.restarts.append(now)
        m.total_restarts += 1
        m.next_start_mono = now + delay
        log.warning("%s: %s; restart #%d in %.2fs", m.spec.agent_id, why, m.total_restarts, delay)

    async def _failsafe_cancel(self, m: Managed, reason: str, timeout: float = 120.0) -> None:
        """Cancel every open order at the venue without the execution agent.

        Runs ``python -m agents.execution_failsafe`` in the execution agent's environment
        (its role's Redis credentials), its output appended to ``execution-failsafe.log``.
        """
        if self.external:
            log.critical("execution given up; agents are external: cancel open orders by "
                         "hand (python -m agents.execution_failsafe)")
            return
        path = self.log_dir / "execution-failsafe.log"
        with open(path, "ab") as logf:  # noqa: ASYNC230 - a local file, opened once
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agents.execution_failsafe", "--reason", reason[:400],
                env=self.env_for(m.spec), stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            code = await proc.wait()
        if code == 0:
            log.critical("failsafe: every open order at the venue is cancelled (see %s)", path)
        else:
            log.critical("failsafe cancel exited with %s: open orders may remain at the venue "
                         "(see %s)", code, path)

    # ------------------------------------------------------------------ operator
    def get(self, agent_id: str) -> Managed:
        """The supervision record of ``agent_id``.

        Raises
        ------
        KeyError
            No such agent in this mesh.
        """
        return self.agents[agent_id]

    async def stop_agent(self, agent_id: str, grace: float | None = None) -> int | None:
        """Stop one agent on an operator's request and keep it stopped (no restart).

        SIGTERM, wait up to ``grace`` s (default ``shutdown_grace_s``), then SIGKILL.
        The agent is parked (``mesh:parked``) so the replay's back-pressure does not
        wait for it.  Returns its exit code (None if it was not running).
        """
        m = self.get(agent_id)
        m.stopped_by_operator, m.next_start_mono = True, None
        with contextlib.suppress(Exception):
            await self.redis.sadd(channels.PARKED_AGENTS_KEY, agent_id)
        code = await self._terminate(m, grace)
        log.info("%s stopped by operator (exit %s)", agent_id, code)
        return code

    async def start_agent(self, agent_id: str) -> bool:
        """Start a stopped (or given-up) agent; False if it was already running.

        The restart budget starts afresh: an operator's start is a deliberate act.
        """
        m = self.get(agent_id)
        with contextlib.suppress(Exception):
            await self.redis.srem(channels.PARKED_AGENTS_KEY, agent_id)
        was_stopped = m.stopped_by_operator or m.gave_up
        m.stopped_by_operator = m.gave_up = False
        m.restarts.clear()
        if m.alive:
            return False
        self.spawn(m)
        log.info("%s started by operator (was %s)", agent_id,
                 "stopped" if was_stopped else "not running")
        return True

    async def restart_agent(self, agent_id: str, grace: float | None = None) -> int | None:
        """Stop (gracefully) and start one agent now; counts as a restart.

        Returns the old process' exit code (None if it was not running).
        """
        m = self.get(agent_id)
        m.busy = True
        try:
            code = await self._terminate(m, grace)
            with contextlib.suppress(Exception):
                await self.redis.srem(channels.PARKED_AGENTS_KEY, agent_id)
            m.stopped_by_operator = m.gave_up = False
            m.total_restarts += 1
            self.spawn(m)
        finally:
            m.busy = False
        log.info("%s restarted by operator (old exit %s)", agent_id, code)
        return code

    async def _terminate(self, m: Managed, grace: float | None) -> int | None:
        if not m.alive:
            return None
        assert m.proc is not None
        grace = self.cfg.shutdown_grace_s if grace is None else grace
        self.kill(m, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while m.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if m.proc.poll() is None:
            log.warning("%s did not stop within %.1fs: SIGKILL", m.spec.agent_id, grace)
            self.kill(m)
            await asyncio.to_thread(m.proc.wait, 5)
        m.last_exit = m.proc.returncode
        return m.last_exit

    async def watch(self, stop: asyncio.Event, interval: float = 0.25) -> None:
        """Supervise until ``stop`` is set."""
        while not stop.is_set():
            await self.check_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def wait_running(self, timeout: float) -> bool:
        """Wait until every agent reports ``running``; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.check_once()
            beats = await self.health()
            if all(
                hb is not None and hb.state is AgentState.RUNNING
                for a, hb in beats.items() if not self.agents[a].stopped_by_operator
            ):
                return True
            await asyncio.sleep(0.1)
        return False

    # ------------------------------------------------------------------ stopping
    async def stop_all(self, grace: float | None = None) -> dict[str, int | None]:
        """SIGTERM upstream-first, wait up to ``grace`` s, SIGKILL the rest; exit codes."""
        self._stopping = True
        grace = self.cfg.shutdown_grace_s if grace is None else grace
        deadline = time.monotonic() + grace
        for m in self.agents.values():  # specs are in pipeline order
            self.kill(m, signal.SIGTERM)
            per_agent = time.monotonic() + min(2.0, max(0.0, deadline - time.monotonic()))
            while m.proc is not None and m.proc.poll() is None and time.monotonic() < per_agent:
                await asyncio.sleep(0.02)
        while time.monotonic() < deadline and any(
            m.proc is not None and m.proc.poll() is None for m in self.agents.values()
        ):
            await asyncio.sleep(0.05)
        codes: dict[str, int | None] = {}
        for agent_id, m in self.agents.items():
            if m.proc is not None and m.proc.poll() is None:
                log.warning("%s did not stop within %.1fs: SIGKILL", agent_id, grace)
                self.kill(m)
                m.proc.wait(5)
            codes[agent_id] = m.proc.returncode if m.proc is not None else None
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        return codes
