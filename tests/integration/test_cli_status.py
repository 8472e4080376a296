"""``tradingmesh status`` against a Redis with the launcher's ACL (issue 20, item 1: it
failed with ``HELLO must be called with the client already authenticated``)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backend import channels
from backend.messages import AgentHeartbeat, AgentState, now_ns
from backend.redisctl.acl import CREDENTIALS_ENV
from backend.redisctl.process import RedisServer
from orchestrator.cli import app

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, Path]]:
    var = tmp_path / "var"
    server = RedisServer.with_acl(var / "redis", appendonly=False).start()
    hb = AgentHeartbeat(source="risk", agent_id="risk", role="risk",
                        state=AgentState.RUNNING, pid=os.getpid(), started_at=now_ns())
    server.client().set(channels.health_key("risk"), hb.model_dump_json())
    yield server, var
    server.stop()


def _status(env: dict[str, str]):  # noqa: ANN202 - click's Result
    clean = {k: None for k in ("TRADINGMESH_CONFIG", "TRADINGMESH_SETTINGS_FILE",
                               "TRADINGMESH_REDIS_URL", CREDENTIALS_ENV)}
    return runner.invoke(app, ["status"], env={**clean, **env})


def test_status_with_the_credentials_variable(acl_redis: tuple[RedisServer, Path]) -> None:
    server, var = acl_redis
    res = _status({"REDIS_URL": server.public_url, "TRADINGMESH_VAR_DIR": str(var / "x"),
                   CREDENTIALS_ENV: str(server.credentials_path)})
    assert res.exit_code == 0, res.output
    assert "risk" in res.output and "running" in res.output


def test_status_finds_the_launchers_credentials_file_in_var(
    acl_redis: tuple[RedisServer, Path],
) -> None:
    server, var = acl_redis  # var/redis/credentials, where scripts/launch.sh keeps them
    res = _status({"REDIS_URL": server.public_url, "TRADINGMESH_VAR_DIR": str(var)})
    assert res.exit_code == 0, res.output
    assert "running" in res.output


def test_without_credentials_one_clear_line(
    acl_redis: tuple[RedisServer, Path], tmp_path: Path,
) -> None:
    server, _ = acl_redis
    res = _status({"REDIS_URL": server.public_url,
                   "TRADINGMESH_VAR_DIR": str(tmp_path / "elsewhere")})
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "not reachable" in text and "without credentials" in text
    assert "TRADINGMESH_REDIS_CREDENTIALS" in text
    assert "Traceback" not in res.output
    assert server.password is not None and server.password not in res.output


def test_tail_without_credentials_says_so_and_exits(
    acl_redis: tuple[RedisServer, Path], tmp_path: Path,
) -> None:
    """``tail`` retried forever without a hint (issue 20, item 1)."""
    server, _ = acl_redis
    env = {k: v for k, v in os.environ.items() if k not in (CREDENTIALS_ENV, "REDIS_URL")}
    env.update(REDIS_URL=server.public_url, TRADINGMESH_VAR_DIR=str(tmp_path / "elsewhere"))
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", "tail", "-n", "1"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "without credentials" in proc.stderr and "Traceback" not in proc.stderr
    assert server.password is not None and server.password not in proc.stderr + proc.stdout


def test_tail_finds_the_launchers_credentials(acl_redis: tuple[RedisServer, Path]) -> None:
    server, var = acl_redis
    env = {k: v for k, v in os.environ.items() if k not in (CREDENTIALS_ENV, "REDIS_URL")}
    env.update(REDIS_URL=server.public_url, TRADINGMESH_VAR_DIR=str(var))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "tail", "agent:status",
                             "-n", "1"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        c = server.client()
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            c.publish(channels.AGENT_STATUS, AgentHeartbeat(
                source="risk", agent_id="risk", role="risk", state=AgentState.RUNNING,
                pid=1, started_at=now_ns()).model_dump_json())
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.2)
        out, errs = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, errs[-2000:]
    assert "agent_heartbeat" in out


def test_a_wrong_password_is_named_as_such(
    acl_redis: tuple[RedisServer, Path], tmp_path: Path,
) -> None:
    server, _ = acl_redis
    wrong = f"redis://orchestrator:not-the-password@127.0.0.1:{server.port}/0"
    res = _status({"REDIS_URL": wrong, "TRADINGMESH_VAR_DIR": str(tmp_path / "elsewhere")})
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "not reachable" in text and "refused the credentials" in text
    assert "not-the-password" not in res.output
