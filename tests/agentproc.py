"""Start agent processes for integration tests (real redis-server, own settings file)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from backend.settings import SETTINGS_FILE_ENV, Settings, write_resolved

ROOT = Path(__file__).resolve().parent.parent


def make_settings(tmp: Path, redis_url: str, **overrides: object) -> Settings:
    """Settings for a test mesh: its own var dir and SQLite database under ``tmp``."""
    base = {
        "redis_url": redis_url,
        "database_url": f"sqlite:///{tmp / 'test.db'}",
        "var_dir": tmp,
        "data_dir": ROOT / "data" / "sample",
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


def agent_env(settings: Settings, tmp: Path, failpoints: str = "") -> dict[str, str]:
    """Environment for ``python -m agents.run`` with these settings (and failpoints)."""
    env = dict(os.environ)
    env[SETTINGS_FILE_ENV] = str(write_resolved(settings, tmp / "settings.json"))
    env["PYTHONUNBUFFERED"] = "1"
    env["TRADINGMESH_FAILPOINT_DIR"] = str(tmp)
    if failpoints:
        env["TRADINGMESH_FAILPOINTS"] = failpoints
    else:
        env.pop("TRADINGMESH_FAILPOINTS", None)
    return env


def start_agent(role: str, env: dict[str, str], tmp: Path, symbol: str | None = None,
                ) -> subprocess.Popen[bytes]:
    """Spawn one agent process; its output goes to ``tmp/<role>.log``."""
    args = [sys.executable, "-m", "agents.run", role] + (["--symbol", symbol] if symbol else [])
    log = open(tmp / f"{role}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM and wait; SIGKILL if it does not stop."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout)
