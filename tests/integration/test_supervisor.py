"""Supervisor on a real redis-server: restarts dead and hung agents, gives up on crash loops."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import orjson
import pytest
import redis

from backend import channels
from backend.mesh.topology import AgentSpec
from backend.settings import OrchestratorConfig
from orchestrator.supervisor import Supervisor
from tests.support.agentproc import agent_env, make_settings

pytestmark = pytest.mark.integration

FAST = OrchestratorConfig(
    heartbeat_interval_s=0.2, heartbeat_ttl_s=1.0, restart_backoff_base_s=0.05,
    restart_backoff_max_s=0.2, max_restarts=3, restart_window_s=60, shutdown_grace_s=5,
    start_timeout_s=20,
)


async def _until(sup: Supervisor, predicate, timeout: float = 30.0) -> None:  # noqa: ANN001
    """Run supervision passes until ``predicate()`` holds (deadline, no fixed sleeps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met within deadline")
        await sup.check_once()
        await asyncio.sleep(0.05)


def _make(tmp: Path, url: str, spec: AgentSpec, env_over: dict | None = None) -> Supervisor:
    settings = make_settings(tmp, url, orchestrator=FAST)
    env = agent_env(settings, tmp)
    env.update(env_over or {})
    return Supervisor(settings, [spec], env, tmp / "logs")


def _state(r: redis.Redis, agent_id: str) -> tuple[str, int] | None:
    raw = r.get(channels.health_key(agent_id))
    if not raw:
        return None
    hb = orjson.loads(raw)
    return hb["state"], hb["pid"]


def test_killed_agent_is_restarted(redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)

    async def go() -> None:
        sup = _make(tmp_path, redis_url, AgentSpec("compliance", "compliance"))
        sup.start_all()
        m = sup.agents["compliance"]
        try:
            assert await sup.wait_running(30)
            old = m.pid
            os.kill(old, signal.SIGKILL)
            await _until(sup, lambda: m.total_restarts == 1 and m.pid not in (None, old)
                         and _state(r, "compliance") == ("running", m.pid))
        finally:
            codes = await sup.stop_all()
        assert codes["compliance"] == 0  # clean SIGTERM shutdown of the new process

    asyncio.run(go())


def test_hung_agent_is_detected_and_replaced(redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)

    async def go() -> None:
        sup = _make(tmp_path, redis_url, AgentSpec("risk", "risk"))
        sup.start_all()
        m = sup.agents["risk"]
        try:
            assert await sup.wait_running(30)
            hung = m.proc
            os.kill(hung.pid, signal.SIGSTOP)  # alive but silent
            await _until(sup, lambda: m.total_restarts == 1 and m.proc is not hung
                         and _state(r, "risk") == ("running", m.pid))
            assert hung.poll() is not None  # the stale process was killed, cannot wake up
        finally:
            await sup.stop_all()

    asyncio.run(go())


def test_execution_crash_loop_gives_up_and_latches_halt(redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)

    async def go() -> None:
        bad = {"TRADINGMESH_SETTINGS_FILE": str(tmp_path / "missing.json")}  # exits at once
        sup = _make(tmp_path, redis_url, AgentSpec("execution", "execution"), bad)
        sup.start_all()
        m = sup.agents["execution"]
        try:
            await _until(sup, lambda: m.gave_up)
        finally:
            await sup.stop_all()
        assert m.total_restarts == FAST.max_restarts
        halt = orjson.loads(r.get(channels.HALT_KEY))
        assert halt["halted"] is True and "execution agent gave up" in halt["reason"]

    asyncio.run(go())
