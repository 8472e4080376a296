"""Retire agent processes left behind by a previous orchestrator.

A new orchestrator must not run its agents beside the old ones: two processes of the
same agent id would read the same consumer groups and could both act on one message.
Agents started by the supervisor get SIGTERM when the orchestrator dies (Linux
``PR_SET_PDEATHSIG``), so usually they are already stopping; this waits for them, and
stops any that are left (e.g. on a platform without the parent-death signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterable

import psutil
from redis.asyncio import Redis

from backend.bus import read_heartbeats

log = logging.getLogger("orchestrator")


def _agent_process(pid: int, agent_id: str) -> psutil.Process | None:
    """The live local process ``pid`` if it runs ``agents.run`` for ``agent_id``'s role."""
    if pid == os.getpid():
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmd = proc.cmdline()
    except psutil.Error:
        return None
    role = agent_id.split(":", 1)[0]
    return proc if "agents.run" in cmd and role in cmd else None


async def retire_orphans(redis: Redis, agent_ids: Iterable[str], grace_s: float) -> list[int]:
    """SIGTERM (then, after ``grace_s`` s, SIGKILL) every local process whose heartbeat
    names one of ``agent_ids``; return the pids retired.

    Heartbeats that cannot be read or name a pid that is not a local ``agents.run``
    process are ignored (an agent on another host, a recycled pid).
    """
    procs: dict[str, psutil.Process] = {}
    for agent_id, hb in (await read_heartbeats(redis, list(agent_ids))).items():
        proc = _agent_process(hb.pid, agent_id) if hb is not None else None
        if proc is not None:
            procs[agent_id] = proc
    if not procs:
        return []
    log.warning("agents of a previous orchestrator still running: %s; stopping them",
                {a: p.pid for a, p in procs.items()})
    for proc in procs.values():
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_running(p) for p in procs.values()):
        await asyncio.sleep(0.05)
    for agent_id, proc in procs.items():
        if _running(proc):
            log.warning("%s (pid %d) did not stop within %.1fs: SIGKILL",
                        agent_id, proc.pid, grace_s)
            with contextlib.suppress(psutil.Error):
                proc.kill()
    return [p.pid for p in procs.values()]


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
