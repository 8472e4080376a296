"""Start agent processes for integration tests (real redis-server, own settings file)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import redis

from backend import channels
from backend.messages import BarClosed
from backend.settings import SETTINGS_FILE_ENV, Settings, write_resolved

ROOT = Path(__file__).resolve().parents[2]
#: Open time of bar 0 of the synthetic test bars (ns UTC) and their spacing.
T0 = 1_515_560_100_000_000_000
FIVE_MIN = 300_000_000_000


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


def running(r: redis.Redis, agent_id: str) -> bool:
    """True when ``agent_id``'s heartbeat says ``running``."""
    raw = r.get(channels.health_key(agent_id))
    return bool(raw) and orjson.loads(raw)["state"] == "running"


def bar(seq: int, price: float = 0.1) -> BarClosed:
    """A flat ETH/BTC 5-minute bar number ``seq`` at ``price``."""
    return BarClosed(source="test", symbol="ETH/BTC", open_time=T0 + seq * FIVE_MIN,
                     open=price, high=price * 1.001, low=price * 0.999, close=price,
                     volume=10, seq=seq)
