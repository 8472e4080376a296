"""Redis with the mesh's ACL, as the launcher runs it: ``serve --acl``, ``ensure_redis``,
a whole replay that the ACL denies nothing, and transactions replayed from the AOF after a
restart (the roles' rights and refusals: test_redis_acl.py).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import redis
import redis.asyncio
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from backend import channels
from backend.redisctl.acl import (
    ADMIN,
    AGENT_ROLES,
    ORCHESTRATOR,
    read_credentials,
    role_url,
)
from backend.redisctl.server import RedisServer, ensure_redis
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NOPERM = redis.exceptions.NoPermissionError


# ---------------------------------------------------------------------- serve --acl
def test_serve_acl_prints_no_password_and_keeps_its_credentials(tmp_path: Path) -> None:
    var = tmp_path / "redis"

    def serve() -> tuple[str, str, dict[str, SecretStr], str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend.redisctl.server", "serve", "--var", str(var), "--acl"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            url = proc.stdout.readline().strip()  # type: ignore[union-attr]
            cred_line = proc.stdout.readline().strip()  # type: ignore[union-attr]
            assert url.startswith("REDIS_URL=redis://127.0.0.1:"), url
            assert cred_line == f"REDIS_CREDENTIALS={var.resolve() / 'credentials'}"
            creds = read_credentials(var / "credentials")
            base = url.removeprefix("REDIS_URL=")
            with redis.Redis.from_url(role_url(base, "dashboard", creds)) as d:
                assert d.ping()
            eventually(lambda: (var / "redis.url").exists(), 5)
            assert (var / "redis.url").read_text().strip() == base
            done = subprocess.run(
                [sys.executable, "-m", "backend.redisctl.server", "stop", "--var", str(var)],
                cwd=ROOT, capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, done.stderr
            out, err = proc.communicate(timeout=15)
            assert proc.returncode == 0
            return url + "\n" + cred_line + "\n" + out, err + done.stdout + done.stderr, creds, base
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    out1, err1, creds1, _ = serve()
    out2, err2, creds2, _ = serve()
    assert creds1 == creds2  # generated once, reused
    assert stat.S_IMODE((var / "credentials").stat().st_mode) == 0o600
    logs = out1 + err1 + out2 + err2 + (var / "redis.log").read_text()
    for pw in creds1.values():
        assert pw.get_secret_value() not in logs


def test_ensure_redis_with_acl_returns_a_public_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("REDIS_URL", "TRADINGMESH_REDIS_URL"):
        monkeypatch.delenv(k, raising=False)
    url, proc = ensure_redis(tmp_path, acl=True)
    assert isinstance(proc, RedisServer)
    try:
        assert url == proc.public_url and "@" not in url
        creds = read_credentials(proc.credentials_path)  # type: ignore[arg-type]
        assert proc.credentials_path == (tmp_path / "redis" / "credentials").resolve()
        with redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0)) as anon, \
                pytest.raises(redis.exceptions.AuthenticationError):
            anon.ping()
        with redis.Redis.from_url(role_url(url, ORCHESTRATOR, creds)) as orch:
            assert orch.ping()
    finally:
        proc.stop()
    assert not proc.running


# ---------------------------------------------------------------------- a whole run
def _users_connected(admin: redis.Redis) -> set[str]:
    """Users of the open connections (``default``: not authenticated yet)."""
    return {c["user"] for c in admin.client_list()} - {"default"}


@pytest.mark.e2e
def test_replay_with_acl_denies_nothing(tmp_path: Path) -> None:
    """``tradingmesh run --limit 300`` on a ``serve --acl`` Redis (as scripts/launch.sh
    starts it): every agent and the orchestrator connect as their own users, the run
    trades, ``ACL LOG`` is empty and no password reaches a file, log or the console."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not on PATH")
    rvar, var = tmp_path / "redis", tmp_path / "var"
    serve = subprocess.Popen(
        [sys.executable, "-m", "backend.redisctl.server", "serve", "--var", str(rvar), "--acl"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base = serve.stdout.readline().strip().removeprefix("REDIS_URL=")  # type: ignore[union-attr]
        cred_path = serve.stdout.readline().strip().removeprefix("REDIS_CREDENTIALS=")  # type: ignore[union-attr]
        creds = read_credentials(cred_path)
        env = {k: v for k, v in os.environ.items() if k not in {
            "TRADINGMESH_REDIS_URL", "DATABASE_URL", "TRADINGMESH_DATABASE_URL",
            "TRADINGMESH_SETTINGS_FILE", "TRADINGMESH_FAILPOINTS", "TRADINGMESH_CONFIG"}}
        env.update({"REDIS_URL": base, "TRADINGMESH_REDIS_CREDENTIALS": cred_path,
                    "TRADINGMESH_VAR_DIR": str(var), "PYTHONUNBUFFERED": "1"})
        report = tmp_path / "report.json"
        with redis.Redis.from_url(role_url(base, ADMIN, creds)) as admin:
            run = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.cli", "run", "--limit", "300",
                 "--report", str(report)],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            seen: set[str] = set()

            def everyone_connected() -> bool:
                assert run.poll() is None, "the run ended before every user was seen"
                seen.update(_users_connected(admin))
                return {ORCHESTRATOR, *AGENT_ROLES} <= seen

            eventually(everyone_connected, timeout=180, interval=0.1,
                       message="orchestrator and every agent role connected")
            output, _ = run.communicate(timeout=600)
            assert run.returncode == 0, output[-3000:]
            assert seen <= {ORCHESTRATOR, *AGENT_ROLES, ADMIN}, seen
            denied = admin.acl_log()
        assert denied == [], denied
        rep = orjson.loads(report.read_bytes())
        assert rep["bars"] == 4 * 300
        assert rep["total"]["trades"] > 0 and rep["orders_by_status"].get("FILLED", 0) > 0
        (run_dir,) = (var / "runs").iterdir()
        texts = [output, (run_dir / "settings.json").read_text()]
        texts += [p.read_text(errors="replace") for p in (run_dir / "logs").iterdir()]
        assert orjson.loads(texts[1])["redis_url"] == base
        for text in texts:
            assert "NOPERM" not in text and "no permissions" not in text
            for pw in creds.values():
                assert pw.get_secret_value() not in text
    finally:
        serve.terminate()
        serve.wait(30)


# ---------------------------------------------------------------------- restart (AOF)
def test_transactions_survive_a_restart_with_the_acl(tmp_path: Path) -> None:
    """The append-only file is replayed as ``default``; Redis 7.0 re-checks the ACL at
    each replayed EXEC, so a ``default`` user without rights would silently drop every
    MULTI/EXEC on restart (found by the Redis-restart fault drill).  The mesh's ACL keeps
    ``default`` as admin's password-protected twin: an agent's transaction survives."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not on PATH")
    server = RedisServer.with_acl(tmp_path / "redis").start()
    try:
        assert server.credentials_path is not None
        risk_url = role_url(server.public_url, "risk", read_credentials(server.credentials_path))
        with redis.Redis.from_url(risk_url) as risk:
            pipe = risk.pipeline(transaction=True)
            pipe.xadd(channels.ORDERS, {b"data": b"{}"})
            pipe.set(channels.state_key("risk"), b"after-exec")
            pipe.execute()
        server.restart()
        with server.client() as admin:
            assert admin.xlen(channels.ORDERS) == 1
            assert admin.get(channels.state_key("risk")) == b"after-exec"
        assert "NOPERM" not in server.log_path.read_text()
    finally:
        server.stop()
