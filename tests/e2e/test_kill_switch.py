"""End to end: the kill switch and the fixed REST paths against real processes.

1. ``tradingmesh run`` at a slowed replay speed on real Redis, REST API on: once a
   position is open, ``POST /api/emergency-stop``.  Then: the account is flat, no order
   created after the call went to the venue (only the kill switch's own closing fills
   happened), signals after the call are rejected by risk, the audit log has the stop.
2. The orchestrator is stopped and ``tradingmesh up`` started on the same Redis: HALTED
   is still latched, and the fixed paths existing scripts call work over plain HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from backend.persistence import Store, make_engine
from backend.redisctl.server import RedisServer, free_port
from tests.support.helpers import eventually

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-token-0123456789"


def _env(var: Path, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("DATABASE_URL", "TRADINGMESH_SETTINGS_FILE", "TRADINGMESH_FAILPOINTS",
              "TRADINGMESH_REDIS_URL"):
        env.pop(k, None)
    env.update({
        "TRADINGMESH_VAR_DIR": str(var), "REDIS_URL": redis_url,
        "TRADINGMESH_API_TOKEN": TOKEN,
        # trade often, so positions are open early in the replay
        "TRADINGMESH_RISK__MIN_CONFIDENCE": "0", "PYTHONUNBUFFERED": "1",
    })
    return env


def call(base: str, method: str, path: str, body: Any = None, token: str | None = TOKEN,
         timeout: float = 30) -> tuple[int, Any]:
    """Plain HTTP (urllib): status and decoded JSON body."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _metrics(base: str) -> dict[str, float]:
    """Unlabelled samples of ``GET /metrics`` (name -> value)."""
    req = urllib.request.Request(base + "/metrics")
    req.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *cmd], cwd=ROOT, env=env,
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )


def _wait_api(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    def up() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        return call(base, "GET", "/api/ready", timeout=2)[0] == 200
    eventually(up, timeout=90, interval=0.2, message="mesh API ready")


def _stop(proc: subprocess.Popen[bytes], log: Path) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("orchestrator did not stop:\n" + log.read_text()[-3000:]) from None


@pytest.fixture(scope="module")
def redis_for_e2e(tmp_path_factory: pytest.TempPathFactory) -> RedisServer:
    import shutil

    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("CI=true but redis-server is not on PATH")
        pytest.skip("redis-server not on PATH (scripts/test.sh installs it)")
    server = RedisServer(tmp_path_factory.mktemp("ks-redis"), die_with_parent=True).start()
    yield server
    server.stop()


def test_emergency_stop_flattens_and_survives_restart(
    redis_for_e2e: RedisServer, tmp_path: Path
) -> None:
    var = tmp_path / "var"
    env = _env(var, redis_for_e2e.url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "run.log"
    run = _start(["run", "--speed", "3000", "--reset", "--api-port", str(port)], env, log)
    try:
        _wait_api(base, run, log)

        def position_open() -> dict | None:
            status, pos = call(base, "GET", "/api/positions")
            return pos if status == 200 and pos["positions"] else None

        before = eventually(position_open, timeout=120, interval=0.2,
                            message="a position opens during the replay")
        assert before["halted"] is False
        status, res = call(base, "POST", "/api/emergency-stop",
                            {"reason": "e2e kill switch", "wait_s": 20})
        assert status == 200, res
        assert res["halted"] is True and res["confirmed"] is True, res
        assert res["flattened"], res
        assert res["positions_left"] == {} and res["open_orders_left"] == []
        stop_ts = res["latched_at"]

        status, pos = call(base, "GET", "/api/positions")
        assert status == 200 and pos["positions"] == [] and pos["halted"] is True

        # The replay goes on; give it new signals to reject.
        def signal_after_stop() -> list[dict]:
            _, sigs = call(base, "GET", "/api/signals?limit=50")
            return [s for s in sigs if s["ts"] > stop_ts and s["outcome"] != "pending"]

        later = eventually(signal_after_stop, timeout=120, interval=0.3,
                           message="a signal decided after the emergency stop")
        assert all(s["outcome"] == "rejected" for s in later), later
        assert any(s["rejected_by"] == "risk" and s["risk"]["rule"] == "halted"
                   for s in later) or all(s["rejected_by"] == "compliance" for s in later)
        status, pos = call(base, "GET", "/api/positions")
        assert pos["positions"] == [], "a position reappeared after the kill switch"
        _, audit = call(base, "GET", "/api/audit?action=emergency_stop")
        assert [a["reason"] for a in audit] == ["e2e kill switch"]
        metrics = _metrics(base)
        assert metrics["tradingmesh_signal_to_order_seconds_count"] >= 1, metrics
        assert metrics["tradingmesh_order_to_fill_seconds_count"] >= 1, metrics
        assert metrics["tradingmesh_breaker_halted"] == 1.0
    finally:
        assert _stop(run, log) in (0, 1), log.read_text()[-3000:]

    # The books: nothing reached the venue after the call except the closing fills.
    (run_dir,) = (var / "runs").iterdir()
    store = Store(make_engine(f"sqlite:///{run_dir / 'tradingmesh.db'}"))
    late_fills = [f for f in store.fills() if f["ts"] >= stop_ts and f["exit_reason"] != "flatten"]
    assert late_fills == [], late_fills
    late_orders = [o for o in store.orders() if o["created_ts"] >= stop_ts]
    for o in late_orders:
        assert o["client_order_id"].endswith("-flat") or o["status"] == "REJECTED", o
    net: dict[str, float] = {}
    for f in store.fills():
        net[f["symbol"]] = net.get(f["symbol"], 0.0) + (
            f["quantity"] if f["side"] == "BUY" else -f["quantity"])
    assert all(abs(q) < 1e-9 for q in net.values()), net

    files = [log, *(p for p in var.rglob("*") if p.is_file())]
    leaked = [p for p in files if TOKEN.encode() in p.read_bytes()]
    assert leaked == [], f"the API token was written to {leaked}"

    # Restart the orchestrator (``up``) on the same Redis: still HALTED.
    port2 = free_port()
    base2 = f"http://127.0.0.1:{port2}"
    log2 = tmp_path / "up.log"
    up = _start(["up", "--speed", "3000", "--api-port", str(port2), "--no-dashboard"], env, log2)
    try:
        _wait_api(base2, up, log2)
        status, breaker = call(base2, "GET", "/api/circuit-breaker")
        assert status == 200 and breaker["halted"] is True, breaker
        assert breaker["kind"] == "kill_switch" and "e2e kill switch" in breaker["reason"]
        _fixed_paths(base2)
    finally:
        assert _stop(up, log2) == 0, log2.read_text()[-3000:]


def _fixed_paths(base: str) -> None:
    """The paths existing users' scripts call, over plain HTTP."""
    status, listing = call(base, "GET", "/api/agents/status")
    assert status == 200
    assert {a["agent_id"] for a in listing["agents"]} >= {"strategy:ETHBTC", "execution"}
    status, eth = call(base, "GET", "/api/agents/ETH%2FBTC/status")
    assert status == 200 and eth["agent_id"] == "strategy:ETHBTC" and eth["state"] == "running"
    assert call(base, "POST", "/api/agents/stop/ETHBTC", token=None)[0] == 401
    status, stopped = call(base, "POST", "/api/agents/stop/ETHBTC")
    assert status == 200 and stopped["ok"], stopped
    assert call(base, "GET", "/api/agents/ETH-BTC/status")[1]["state"] == "stopped"
    status, created = call(base, "POST", "/api/agents/create?symbol=ETH-BTC")
    assert status == 200 and created["pid"], created
    assert call(base, "POST", "/api/agents/create?symbol=ETH_BTC")[0] == 409
    status, missing = call(base, "POST", "/api/agents/create?symbol=EURUSD")
    assert status == 404 and "ETH/BTC" in missing["detail"]
    eventually(lambda: call(base, "GET", "/api/agents/ETHBTC/status")[1]["state"] == "running",
               timeout=30, message="created strategy agent running")
    before = call(base, "GET", "/api/agents/ETHBTC/status")[1]["restarts"]
    status, restarted = call(base, "POST", "/api/agents/restart/ETH_BTC")
    assert status == 200 and restarted["restarts"] == before + 1
    status, pos = call(base, "GET", "/api/positions")
    assert status == 200 and pos["halted"] is True and pos["positions"] == []
    status, res = call(base, "POST", "/api/emergency-stop")
    assert status == 200 and res["confirmed"] is True and res["flattened"] == []
